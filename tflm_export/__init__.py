"""Export tfasc models to int8 TFLite and C arrays for TensorFlow Lite Micro, and verify them."""
