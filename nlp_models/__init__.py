"""Text models: one module per family (bert.py, transformer.py), each with its own map."""
