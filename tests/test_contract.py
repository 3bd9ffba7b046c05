"""Every backend implements every op of the contract with the contract's exact signature."""

import importlib
import inspect

import pytest

from mocha_triton import contract


@pytest.mark.parametrize("backend", ["cpu_ref", "kernels"])
@pytest.mark.parametrize("family", contract.FAMILIES)
def test_backend_implements_family(backend, family):
    module = importlib.import_module(f"mocha_triton.{backend}.{family}")
    problems = contract.check_implementation(module, family)
    assert not problems, "\n".join(problems)


def test_check_implementation_detects_a_wrong_signature():
    class Fake:
        __name__ = "fake"

        @staticmethod
        def fill(y, val):  # wrong parameter name
            pass

    assert any("differs from the contract" in p for p in contract.check_implementation(Fake, "elementwise"))
    assert any("lacks op copy" in p for p in contract.check_implementation(Fake, "elementwise"))


def test_specs_are_consistent():
    for spec in contract.OPS.values():
        assert spec.doc, spec.name
        assert len(set(spec.arg_names)) == len(spec.arg_names), spec.name
        roles = [a.role for a in spec.args]
        assert "out" in roles or "inout" in roles, f"{spec.name} writes nothing"
        # defaults only on trailing params
        seen_default = False
        for a in spec.args:
            seen_default |= a.has_default
            assert not seen_default or a.has_default, f"{spec.name}: {a.name} without default after one"


def test_contract_ops_have_docstrings_on_both_backends():
    for spec in contract.OPS.values():
        for backend in ("cpu_ref", "kernels"):
            fn = getattr(importlib.import_module(f"mocha_triton.{backend}.{spec.family}"), spec.name)
            assert inspect.getdoc(fn), f"{backend}.{spec.family}.{spec.name} has no docstring"
