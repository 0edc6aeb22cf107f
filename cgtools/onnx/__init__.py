"""What cgtools knows of ONNX without importing `onnx`: `mapping` holds the element-type codes (ops import it)."""
