"""Spatial ops torch has no match for (ONNX's own antialias, crops with extrapolation, exclude_outside): their
gradients against central finite differences. The cases are in tests/opcases/spatial.py."""

from __future__ import annotations

import pytest

from opcases.spatial import FINITE_DIFFERENCE_ONLY_CASES
from opcheck import check_finite_differences, params


@pytest.mark.parametrize("c", params(FINITE_DIFFERENCE_ONLY_CASES))
def test_gradient_matches_finite_differences(c):
    check_finite_differences(c)
