"""ONNX interop: read a model into a Graph (read.py), write a Graph as a model (write.py), what both share
(mapping.py: dtype codes, opset tables, the optional `onnx` import), and the backend node suite
(conformance.py, `python -m cgtools.onnx.conformance`). Loading and converting by suffix is cgtools.io's.

This package imports nothing itself: the ops, below it, import cgtools.onnx.mapping for dtype codes.

The `onnx` package is optional: it is imported inside functions only, and its absence is a CgError saying how
to install it (mapping.INSTALL_HINT).

How the two formats map onto each other:
- ONNX graph inputs are cgtools inputs (dtype and shape from their type; a symbolic dimension leaves the
  shape unknown). An initializer that is also listed as a graph input is, from IR version 4 on, an input with
  a default value — which is how cgtools inputs with values are written. (Before IR 4 every initializer had to
  be listed as an input, so there they are weights like any other.)
- Float initializers are params (trainable); other initializers are constants. Constant nodes become
  constants too, and cgtools constants are written as Constant nodes, so kinds survive a round trip.
- int8, uint8, int16 and uint16 initializers (and Constant values) are widened to int32, uint32 to int64:
  lossless, and the original type is kept in the tensor's doc, so writing the model narrows them back. Graph
  inputs and outputs of types the format lacks are refused, as are strings, bfloat16, float8, complex, and
  sequence, map and optional types.
- Node names are kept when they are unique and no leaf has them; otherwise a node is named after its first
  output, suffixed `_1`, `_2`, … if that is taken.
- MSELoss, which ONNX lacks, is written as Sub, Mul and ReduceMean (ReduceSum for reduction "sum").
- Each op has one form: attributes that later opsets moved to inputs (ReduceSum's axes since 13, the other
  reductions' since 18, Squeeze/Unsqueeze's and Split's since 13, Pad's since 11, Dropout's ratio since 12)
  are read as constant inputs, whatever the model's opset.
- Models are written at the graph's recorded opset, else at DEFAULT_OPSET. Below the opset that moved an
  attribute to an input, a constant input is written back as the attribute; at or above it, an attribute
  (as JSON graphs may give) becomes a Constant input.
- Older opsets' defaults are made explicit where the ops follow the newest: Softmax, LogSoftmax and Hardmax
  before opset 13 read axis 1 (written back with axis -1, which means the same there); Split before 18 makes
  as many parts as it has outputs (num_outputs).
"""
