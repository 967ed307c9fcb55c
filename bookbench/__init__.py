"""bookbench: load scenarios, index-set comparisons and deployment reviews for a clinic-booking API.

Stages, upstream first (a module imports only from stages below it):
cli -> pipeline -> load | db | checks | report -> analysis -> artifacts -> spec -> errors
"""
