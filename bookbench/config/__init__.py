"""What every stage agrees on: scenarios.yaml, the load shape, dataset parameters and where load may go."""
