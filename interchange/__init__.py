"""Model interchange: export to frozen graph / SavedModel / ONNX with a parity check, and
ONNX import into a trainable tf.compat.v1 graph."""
