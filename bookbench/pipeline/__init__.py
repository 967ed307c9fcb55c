"""Stages as functions: run, compare and sweep take typed inputs and leave a run folder."""
