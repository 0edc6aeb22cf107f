"""The op cases, one module per op family, each with the same tables: CASES (checked against finite
differences and torch autograd), TORCH_ONLY_CASES (kinks and ties, against torch only), NON_FLOAT_OPS
(registered ops with nothing to differentiate), and the ids of cases rerun in lower precision
(FLOAT32_CASES, LOW_PRECISION_CASES). tests/test_ops.py runs them all."""

# Every family, in the order they are imported (they draw their inputs from one random generator)
FAMILY_NAMES = ("core", "conv", "extended", "attention", "indexing", "maths", "recurrent", "spatial", "signal",
                "quantize", "sequence", "detection", "control")
