"""Net: layers wired by blob names, topologically sorted and set up on one backend.

``Net(name, backend, layers, phase="train")`` sorts the layers from their tops and bottoms (in-place
layers run right after the producer of their blob), sets each one up, allocates a gradient blob for
every blob that needs back-propagation (its producer or an ancestor has parameters), and registers
parameters in the backend's registry so that layers with the same ``param_key`` (or name) share them,
within a net and across nets (a test net shares the training net's weights this way).

``forward()`` returns the objective (sum of the loss layers' losses); ``backward(regu_coef)`` runs the
layers in reverse order and adds each parameter's regularizer gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mocha_triton.blob import Blob
from mocha_triton.layers.base import Layer, LayerState, TopologyError

PHASES = ("train", "test")


def topological_sort(layers: Sequence[Layer]) -> list[Layer]:
    """Order layers so every blob is produced (and modified in place) before it is consumed."""
    names = [layer.name for layer in layers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise TopologyError(f"duplicate layer names: {duplicates}")
    producer: dict[str, Layer] = {}
    for layer in layers:
        for top in layer.tops:
            if top in producer:
                raise TopologyError(f"blob {top!r} is produced by both {producer[top].name!r} and {layer.name!r}")
            producer[top] = layer
    for layer in layers:
        for bottom in layer.bottoms:
            if bottom not in producer:
                raise TopologyError(f"layer {layer.name!r}: bottom {bottom!r} is not produced by any layer")

    # Edges: producer -> in-place modifiers of the blob (in the given order) -> other consumers.
    after: dict[str, set[str]] = {layer.name: set() for layer in layers}  # layer -> layers it must follow
    inplace_on: dict[str, list[Layer]] = {}
    for layer in layers:
        if layer.is_inplace:
            for bottom in layer.bottoms:
                inplace_on.setdefault(bottom, []).append(layer)
    for layer in layers:
        for bottom in layer.bottoms:
            after[layer.name].add(producer[bottom].name)
            if not layer.is_inplace:
                after[layer.name].update(m.name for m in inplace_on.get(bottom, []))
    for chain in inplace_on.values():
        for earlier, later in zip(chain, chain[1:]):
            after[later.name].add(earlier.name)

    order: list[Layer] = []
    done: set[str] = set()
    pending = list(layers)
    while pending:
        ready = [layer for layer in pending if after[layer.name] <= done]
        if not ready:
            raise TopologyError(f"the layers {[layer.name for layer in pending]} form a cycle")
        # in-place layers first, so they run right after their producer
        ready.sort(key=lambda layer: not layer.is_inplace)
        layer = ready[0]
        order.append(layer)
        done.add(layer.name)
        pending.remove(layer)
    return order


class Net:
    """A network of named layers on one backend."""

    def __init__(self, name: str, backend: Any, layers: Sequence[Layer], phase: str = "train") -> None:
        if phase not in PHASES:
            raise ValueError(f"Net {name!r}: phase must be one of {PHASES}, got {phase!r}")
        self.name = name
        self.backend = backend
        self.phase = phase
        self.layers = topological_sort(layers)
        self.states: list[LayerState] = []
        self.output_blobs: dict[str, Blob] = {}
        self.diff_blobs: dict[str, Blob | None] = {}
        self.params: dict[str, list[Any]] = {}
        needs_bp: dict[str, bool] = {}
        for layer in self.layers:
            inputs = [self.output_blobs[b] for b in layer.bottoms]
            diffs = [self.diff_blobs.get(b) for b in layer.bottoms]
            state = self._setup_layer(layer, inputs, diffs)
            upstream = any(needs_bp.get(b, False) for b in layer.bottoms)
            produce_bp = layer.can_backprop and (bool(state.parameters) or upstream)
            if len(state.blobs) != len(layer.tops):
                raise TopologyError(f"layer {layer.name!r} made {len(state.blobs)} blobs for tops {layer.tops}")
            for i, (top, blob) in enumerate(zip(layer.tops, state.blobs)):
                blob.name = blob.name or top
                self.output_blobs[top] = blob
                needs_bp[top] = produce_bp
                if produce_bp and state.blobs_diff[i] is None:
                    state.blobs_diff[i] = Blob.zeros(backend, blob.shape, top + "-diff")
                self.diff_blobs[top] = state.blobs_diff[i] if produce_bp else None
            if state.parameters:
                self.params[layer.name] = state.parameters
            self.states.append(state)
        self._needs_bp = needs_bp

    def _setup_layer(self, layer: Layer, inputs: list[Blob], diffs: list[Blob | None]) -> LayerState:
        key = layer.param_key_or_name
        shared = self.backend.registry.get(key) if layer.has_params else None
        if layer.has_params:
            state = layer.setup(self.backend, inputs, diffs, phase=self.phase, shared_params=shared)
            self.backend.registry.put(key, state.parameters)
        else:
            state = layer.setup(self.backend, inputs, diffs, phase=self.phase)
        return state

    # --- running ------------------------------------------------------------------------------
    def forward(self) -> float:
        """Run every layer forward; return the objective (sum of the losses)."""
        objective = 0.0
        for layer, state in zip(self.layers, self.states):
            state.forward([self.output_blobs[b] for b in layer.bottoms])
            if layer.has_loss:
                objective += float(state.loss)
        return objective

    def backward(self, regu_coef: float = 0.0) -> None:
        """Back-propagate in reverse order, then add regularizer gradients (not for frozen layers)."""
        for layer, state in zip(reversed(self.layers), reversed(self.states)):
            if not layer.can_backprop:
                continue
            state.backward([self.output_blobs[b] for b in layer.bottoms],
                           [self.diff_blobs.get(b) for b in layer.bottoms])
            if state.parameters and not state.frozen:
                for param in state.parameters:
                    param.regularizer.add_gradient(param, regu_coef)

    def forward_epoch(self) -> None:
        """Call forward until the first data layer's epoch counter changes (one pass over its data)."""
        source = next((s for s in self.states if s.layer.is_source and hasattr(s, "epoch")), None)
        if source is None:
            raise TopologyError(f"Net {self.name!r}: forward_epoch needs a data layer with an epoch counter")
        start = source.epoch
        while source.epoch == start:
            self.forward()

    # --- inspection and control ---------------------------------------------------------------
    def get_state(self, name: str) -> LayerState:
        for state in self.states:
            if state.layer.name == name:
                return state
        raise KeyError(f"Net {self.name!r} has no layer {name!r}; layers: {[s.layer.name for s in self.states]}")

    def get_layer(self, name: str) -> Layer:
        return self.get_state(name).layer

    def freeze(self, *names: str) -> None:
        for name in names:
            self.get_state(name).frozen = True

    def unfreeze(self, *names: str) -> None:
        for name in names:
            self.get_state(name).frozen = False

    def freeze_all(self) -> None:
        for state in self.states:
            state.frozen = True

    def unfreeze_all(self) -> None:
        for state in self.states:
            state.frozen = False

    def trainable_parameters(self) -> list[tuple[str, Any]]:
        """(layer name, parameter) for every parameter of a non-frozen layer, in layer order."""
        return [(s.layer.name, p) for s in self.states if not s.frozen for p in s.parameters]

    def reset_statistics(self) -> None:
        for state in self.states:
            if state.layer.has_stats:
                state.reset_statistics()

    def statistics(self) -> dict[str, float]:
        """Current values of every statistics layer, keyed like Mocha (e.g. 'test-accuracy-accuracy')."""
        stats: dict[str, float] = {}
        for state in self.states:
            if state.layer.has_stats:
                stats.update(state.statistics())
        return stats

    def check_bp_topology(self) -> None:
        """Raise TopologyError when back-propagation would be wrong: a blob that needs a gradient is
        consumed by two back-propagating layers (insert a SplitLayer) or by none (dangling)."""
        for blob_name, needs in self._needs_bp.items():
            if not needs:
                continue
            consumers = [layer.name for layer in self.layers if blob_name in layer.bottoms and layer.can_backprop
                         and not layer.is_inplace]
            if len(consumers) > 1:
                raise TopologyError(f"Net {self.name!r}: blob {blob_name!r} needs back-propagation and is consumed "
                                    f"by {consumers}; insert a SplitLayer to fan it out")
            if not consumers:
                raise TopologyError(f"Net {self.name!r}: blob {blob_name!r} needs back-propagation but no loss "
                                    "consumes it (dangling blob)")

    def destroy(self) -> None:
        for state in self.states:
            state.shutdown()
        self.states = []

    def __str__(self) -> str:
        lines = [f"Net {self.name!r} on {self.backend!r}, phase {self.phase}, {len(self.layers)} layers:"]
        for layer, state in zip(self.layers, self.states):
            ins = ", ".join(f"{b}{self.output_blobs[b].shape}" for b in layer.bottoms)
            outs = ", ".join(f"{t}{blob.shape}" for t, blob in zip(layer.tops, state.blobs))
            params = "".join(f" [{p.name}{p.shape}]" for p in state.parameters)
            lines.append(f"  {layer.name:<16} {type(layer).__name__:<28} {ins or '-'} -> {outs or '-'}{params}")
        return "\n".join(lines)
