"""The search: study files, the objective, studies and their workers."""
