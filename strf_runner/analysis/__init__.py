"""Plots and figures: functions take arrays/DataFrames and return matplotlib Figures."""
