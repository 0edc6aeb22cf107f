"""The op cases, one module per op family, each with the same tables: CASES (checked against finite
differences and torch autograd), TORCH_ONLY_CASES (kinks and ties, against torch only), NON_FLOAT_OPS
(registered ops with nothing to differentiate), and the ids of cases rerun in lower precision
(FLOAT32_CASES, LOW_PRECISION_CASES). tests/test_ops.py runs them all."""
