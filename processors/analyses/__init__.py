"""Analyses: pure pandas functions over the analysis tables (docs/analysis-tables.md).

One module per analysis; each takes DataFrames (and plain arguments such as a period or an
``as_of``) and returns DataFrames or small result records. No Kafka, Faust, Redis or clock:
time comes in as an argument.
"""
