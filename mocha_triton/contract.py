"""The op contract: every numeric operation of mocha-triton, written down once.

Both backends implement exactly these functions, with exactly these parameter names in this order:

* ``mocha_triton.cpu_ref.<family>.<op>`` — the NumPy reference (float32 and float64 arrays);
* ``mocha_triton.kernels.<family>.<op>`` — Triton kernels (torch tensors used as storage only;
  float32, on CUDA or, without a GPU, in Triton's interpreter on CPU tensors).

Conventions shared by every op:

* Layout is NCHW, batch first. Filters are ``(F, C // groups, KH, KW)``; inner-product weights
  ``(out, in)``. Spatial pairs are Python-ordered tuples ``(h, w)``.
* Outputs are **preallocated by the caller** (like Caffe/Mocha blobs) and written in place; an op
  returns ``None``. Roles: ``in`` is read only, ``out`` is overwritten, ``inout`` is read and updated
  in place, ``param`` is a plain Python value.
* All floating arrays of one call share one dtype. Labels are 0-based class indices stored as
  floats (like Caffe/Mocha HDF5 files) or integers; a label outside ``[0, C)`` is a ValueError.
* Index outputs (max-pooling argmax) are int32 flat offsets ``h * W + w`` inside one (n, c) plane.
  Count outputs (accuracy) are int64.
* Bad input raises ``TypeError`` (wrong dtype or type) or ``ValueError`` (shape, range), naming the
  argument and the problem. The checks live in :mod:`mocha_triton.checks` and are shared by both
  backends, so both reject the same inputs with the same message.

The Triton side reads one more setting, the ``tl.dot`` input precision ("ieee" | "tf32" |
"tf32x3"), from :func:`mocha_triton.kernels.set_precision`; the NumPy side is always IEEE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["in", "out", "inout", "param"]

NEURONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh", "exp")
NORMALIZE_MODES = ("local", "global", "no")
PRECISIONS = ("ieee", "tf32", "tf32x3")
LOG_CLAMP = 1e-20  # Mocha clamps probabilities at 1e-20 before taking the log

_NO_DEFAULT = object()


@dataclass(frozen=True)
class Arg:
    """One argument of an op: its name, its role and (for params) its default."""

    name: str
    role: Role
    doc: str
    default: Any = _NO_DEFAULT

    @property
    def has_default(self) -> bool:
        return self.default is not _NO_DEFAULT


@dataclass(frozen=True)
class OpSpec:
    """An op of the contract: family (module name), name, arguments in order, semantics."""

    family: str
    name: str
    args: tuple[Arg, ...]
    doc: str
    outputs: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "outputs", tuple(a.name for a in self.args if a.role in ("out", "inout")))

    @property
    def arg_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.args)


def _i(name: str, doc: str) -> Arg:
    return Arg(name, "in", doc)


def _o(name: str, doc: str) -> Arg:
    return Arg(name, "out", doc)


def _io(name: str, doc: str) -> Arg:
    return Arg(name, "inout", doc)


def _p(name: str, doc: str, default: Any = _NO_DEFAULT) -> Arg:
    return Arg(name, "param", doc, default)


_STRIDE = _p("stride", "(sh, sw) positive ints")
_PAD = _p("pad", "(ph, pw) symmetric zero padding, non-negative ints")
_GROUPS = _p("groups", "number of groups; C and F divisible by it")
_KERNEL = _p("kernel", "(kh, kw) pooling window")
_CEIL = _p("ceil_mode", "Caffe's ceil rounding of the output size (default) or floor", True)
_NEURON = _p("neuron", f"activation applied to the output, one of {NEURONS}", "identity")
_SLOPE = _p("negative_slope", "slope of leaky_relu for x <= 0", 0.01)
_LABEL = _i("label", "(N, *S) or (N, 1, *S) 0-based class indices, float or int")
_CLASS_W = _i("class_weights", "(C,) per-class weights, or None for all ones")
_NORMALIZE = _p(
    "normalize",
    "how class weights are rescaled: 'local'/'global' to w*C/sum(w) (identical for per-class "
    "weights), 'no' as given",
    "local",
)

_SPECS: list[OpSpec] = [
    # --- convolution --------------------------------------------------------------------------
    OpSpec("conv", "conv2d_forward", (
        _i("x", "(N, C, H, W) input"),
        _i("w", "(F, C // groups, KH, KW) filters"),
        _i("b", "(F,) bias, or None"),
        _o("y", "(N, F, OH, OW), OH = (H + 2 ph - KH) // sh + 1"),
        _STRIDE, _PAD, _GROUPS, _NEURON, _SLOPE,
    ), "Cross-correlation y = neuron(conv(x, w) + b), per group."),
    OpSpec("conv", "conv2d_backward_data", (
        _i("dy", "(N, F, OH, OW) gradient w.r.t. y"),
        _i("w", "(F, C // groups, KH, KW) filters"),
        _o("dx", "(N, C, H, W) gradient w.r.t. x"),
        _STRIDE, _PAD, _GROUPS,
    ), "Data gradient of conv2d_forward (before any neuron)."),
    OpSpec("conv", "conv2d_backward_weight", (
        _i("x", "(N, C, H, W) forward input"),
        _i("dy", "(N, F, OH, OW) gradient w.r.t. y"),
        _o("dw", "(F, C // groups, KH, KW) gradient w.r.t. w"),
        _STRIDE, _PAD, _GROUPS,
    ), "Filter gradient of conv2d_forward, summed over the batch."),
    OpSpec("conv", "conv2d_backward_bias", (
        _i("dy", "(N, F, OH, OW) gradient w.r.t. y"),
        _o("db", "(F,) gradient w.r.t. b: dy summed over N, OH, OW"),
    ), "Bias gradient of conv2d_forward."),
    # --- pooling ------------------------------------------------------------------------------
    OpSpec("pooling", "max_pool2d_forward", (
        _i("x", "(N, C, H, W)"),
        _o("y", "(N, C, OH, OW), size from pool2d_output_size"),
        _o("argmax", "(N, C, OH, OW) int32 flat index h * W + w of the first maximum"),
        _KERNEL, _STRIDE, _PAD, _CEIL,
    ), "Max pooling with Caffe's window rules; windows are clipped to the image."),
    OpSpec("pooling", "max_pool2d_backward", (
        _i("dy", "(N, C, OH, OW)"),
        _i("argmax", "(N, C, OH, OW) int32 from max_pool2d_forward"),
        _o("dx", "(N, C, H, W); each input gets the sum of dy over the windows whose argmax it is"),
        _KERNEL, _STRIDE, _PAD,
    ), "Max pooling gradient (a gather: deterministic, no atomics)."),
    OpSpec("pooling", "mean_pool2d_forward", (
        _i("x", "(N, C, H, W)"),
        _o("y", "(N, C, OH, OW)"),
        _KERNEL, _STRIDE, _PAD, _CEIL,
    ), "Mean pooling; sums over the window clipped to the image, divides by the window clipped to "
       "the padded image (Caffe)."),
    OpSpec("pooling", "mean_pool2d_backward", (
        _i("dy", "(N, C, OH, OW)"),
        _o("dx", "(N, C, H, W)"),
        _KERNEL, _STRIDE, _PAD, _CEIL,
    ), "Mean pooling gradient."),
    # --- inner product ------------------------------------------------------------------------
    OpSpec("inner_product", "inner_product_forward", (
        _i("x", "(N, K) input"),
        _i("w", "(O, K) weights"),
        _i("b", "(O,) bias, or None"),
        _o("y", "(N, O) = neuron(x @ w.T + b)"),
        _NEURON, _SLOPE,
    ), "Fully connected layer forward."),
    OpSpec("inner_product", "inner_product_backward_data", (
        _i("dy", "(N, O)"), _i("w", "(O, K)"), _o("dx", "(N, K) = dy @ w"),
    ), "Data gradient of inner_product_forward (before any neuron)."),
    OpSpec("inner_product", "inner_product_backward_weight", (
        _i("x", "(N, K)"), _i("dy", "(N, O)"), _o("dw", "(O, K) = dy.T @ x"),
    ), "Weight gradient of inner_product_forward."),
    OpSpec("inner_product", "inner_product_backward_bias", (
        _i("dy", "(N, O)"), _o("db", "(O,) = dy summed over N"),
    ), "Bias gradient of inner_product_forward."),
    # --- neurons ------------------------------------------------------------------------------
    OpSpec("neurons", "neuron_forward", (
        _i("x", "any shape"), _o("y", "same shape as x; may be x itself (in place)"),
        _p("neuron", f"one of {NEURONS}"), _SLOPE,
    ), "Activation: identity, relu max(x,0), leaky_relu, sigmoid, tanh, exp."),
    OpSpec("neurons", "neuron_backward", (
        _i("y", "stored forward output"), _i("dy", "gradient w.r.t. y"),
        _o("dx", "gradient w.r.t. x; may be dy itself (in place)"),
        _p("neuron", f"one of {NEURONS}"), _SLOPE,
    ), "Activation gradient from the stored output (relu: dy * (y > 0), the gradient at 0 is 0)."),
    # --- softmax ------------------------------------------------------------------------------
    OpSpec("softmax", "softmax_forward", (
        _i("x", "(N, C, *S), ndim >= 2"), _o("y", "same shape: softmax along axis 1"),
    ), "Numerically stable softmax along the channel axis, at every spatial position."),
    OpSpec("softmax", "softmax_backward", (
        _i("y", "(N, C, *S) stored softmax output"), _i("dy", "gradient w.r.t. y"),
        _o("dx", "dx = y * (dy - sum_c(dy * y))"),
    ), "Softmax gradient along axis 1."),
    # --- losses and statistics -----------------------------------------------------------------
    OpSpec("loss", "softmax_loss_forward", (
        _i("x", "(N, C, *S) logits"), _LABEL, _CLASS_W,
        _o("lse", "(N, *S) log-sum-exp of x along axis 1, kept for the backward"),
        _o("loss", "(1,) sum of -w[label] * max(log p[label], log 1e-20) over positions / (N * prod(S))"),
        _NORMALIZE,
    ), "Fused softmax + multinomial logistic loss (Mocha's SoftmaxLossLayer)."),
    OpSpec("loss", "softmax_loss_backward", (
        _i("x", "(N, C, *S) logits"), _LABEL, _CLASS_W,
        _i("lse", "(N, *S) from softmax_loss_forward"),
        _o("dx", "scale * w[label] * (softmax(x) - onehot(label)) / (N * prod(S))"),
        _NORMALIZE, _p("scale", "loss weight multiplying the gradient", 1.0),
    ), "Gradient of softmax_loss_forward w.r.t. the logits."),
    OpSpec("loss", "multinomial_logistic_loss_forward", (
        _i("prob", "(N, C, *S) probabilities"), _LABEL, _CLASS_W,
        _o("loss", "(1,) sum of -w[label] * log(max(prob[label], 1e-20)) / (N * prod(S))"),
        _NORMALIZE,
    ), "Multinomial logistic loss on probabilities (no backward, like Mocha)."),
    OpSpec("loss", "accuracy_forward", (
        _i("x", "(N, C, *S) scores"), _LABEL,
        _o("correct", "(1,) int64: positions whose label scores in the top k"),
        _p("top_k", "a position counts when fewer than top_k classes rank above its label: a higher "
           "score, or an equal score at a lower class index (argmax's first-index rule, Mocha)", 1),
    ), "Accuracy count (divide by N * prod(S) for the accuracy)."),
    # --- pointwise losses: a prediction against a target of the same shape (N, ...) -------------
    OpSpec("pointwise_loss", "square_loss_forward", (
        _i("pred", "(N, ...) predictions"), _i("target", "same shape"),
        _o("loss", "(1,) sum((pred - target)**2) / (2 * N)"),
    ), "Squared error averaged over the N samples (Mocha's SquareLossLayer, Caffe's EuclideanLoss)."),
    OpSpec("pointwise_loss", "square_loss_backward", (
        _i("pred", "(N, ...) predictions"), _i("target", "same shape"),
        _o("dpred", "scale * (pred - target) / N"), _p("scale", "loss weight multiplying the gradient", 1.0),
    ), "Gradient of square_loss_forward w.r.t. pred (swap pred and target for the target's)."),
    OpSpec("pointwise_loss", "binary_cross_entropy_forward", (
        _i("prob", "(N, ...) probabilities in (0, 1)"), _i("label", "same shape, targets in [0, 1]"),
        _o("loss", "(1,) -sum(label * log(prob) + (1 - label) * log(1 - prob)) / N"),
    ), "Binary cross-entropy on probabilities, without clamping (Mocha's BinaryCrossEntropyLossLayer)."),
    OpSpec("pointwise_loss", "binary_cross_entropy_backward", (
        _i("prob", "(N, ...) probabilities"), _i("label", "same shape"),
        _o("dprob", "-scale * (label / prob - (1 - label) / (1 - prob)) / N, or None"),
        _o("dlabel", "-scale * log(prob / (1 - prob)) / N, or None"),
        _p("scale", "loss weight multiplying the gradients", 1.0),
    ), "Gradients of binary_cross_entropy_forward (None for one not wanted)."),
    OpSpec("pointwise_loss", "hinge_loss_forward", (
        _i("pred", "(N, ...) scores"), _i("label", "same shape, -1 or +1"),
        _o("loss", "(1,) sum(max(0, 1 - label * pred)) / N"),
    ), "Hinge loss averaged over the N samples (Mocha's HingeLossLayer)."),
    OpSpec("pointwise_loss", "hinge_loss_backward", (
        _i("pred", "(N, ...) scores"), _i("label", "same shape"),
        _o("dpred", "-scale * label / N where label * pred < 1, else 0; or None"),
        _o("dlabel", "-scale * pred / N where label * pred < 1, else 0; or None"),
        _p("scale", "loss weight multiplying the gradients", 1.0),
    ), "(Sub)gradients of hinge_loss_forward (0 at the kink; None for one not wanted)."),
    OpSpec("pointwise_loss", "binary_accuracy_forward", (
        _i("pred", "(N, ...) scores"), _i("label", "same shape"),
        _o("correct", "(1,) int64: elements where (pred > threshold) == (label > threshold)"),
        _p("threshold", "0 for -1/+1 labels, 0.5 for 0/1 labels", 0.0),
    ), "Binary accuracy count (divide by the number of elements for the accuracy)."),
    # --- elementwise and reductions ------------------------------------------------------------
    OpSpec("elementwise", "fill", (_o("y", "any shape"), _p("value", "scalar")), "y[...] = value"),
    OpSpec("elementwise", "copy", (_i("x", "any shape"), _o("y", "same shape")), "y[...] = x"),
    OpSpec("elementwise", "axpy", (_p("alpha", "scalar"), _i("x", "any shape"), _io("y", "same shape")),
           "y += alpha * x"),
    OpSpec("elementwise", "scale", (_io("y", "any shape"), _p("alpha", "scalar")), "y *= alpha"),
    OpSpec("elementwise", "bias_add", (
        _io("y", "(N, C, *S)"), _i("b", "(C,)"),
    ), "y[:, c, ...] += b[c] (per-channel bias)."),
    OpSpec("elementwise", "sum_of_squares", (_i("x", "any shape"), _o("out", "(1,) sum of x**2")),
           "Sum of squares; the L2 norm is its square root."),
    # --- regularizers and constraints ----------------------------------------------------------
    OpSpec("regularizers", "l2_regularizer_gradient", (
        _i("w", "parameter"), _io("dw", "its gradient"), _p("coef", "lambda >= 0"),
    ), "dw += coef * w (Caffe/PyTorch weight-decay convention)."),
    OpSpec("regularizers", "l1_regularizer_gradient", (
        _i("w", "parameter"), _io("dw", "its gradient"), _p("coef", "lambda >= 0"),
    ), "dw += coef * sign(w) (sign(0) = 0)."),
    OpSpec("constraints", "l2_norm_constraint", (
        _io("w", "(units, ...) parameter; a 1-D blob is one unit"), _p("threshold", "max L2 norm > 0"),
    ), "Rescale every output unit (row) whose L2 norm exceeds threshold to norm == threshold."),
    # --- solver updates ------------------------------------------------------------------------
    OpSpec("solvers", "sgd_momentum_update", (
        _io("w", "parameter"), _i("dw", "gradient"), _io("v", "momentum history"),
        _p("lr", "learning rate (global times local multiplier)"), _p("momentum", "mu"),
    ), "v = momentum * v - lr * dw; w += v (Mocha/Caffe SGD)."),
    OpSpec("solvers", "nesterov_update", (
        _io("w", "parameter"), _i("dw", "gradient"), _io("v", "momentum history"),
        _p("lr", "learning rate"), _p("momentum", "mu of the previous iteration"),
        _p("next_momentum", "mu of this iteration"),
    ), "w -= momentum * v; v = momentum * v - lr * dw; w += (1 + next_momentum) * v."),
    OpSpec("solvers", "adam_update", (
        _io("w", "parameter"), _i("dw", "gradient"), _io("m", "first-moment estimate"),
        _io("v", "second-moment estimate"),
        _p("step_size", "lr * sqrt(1 - beta2**t) / (1 - beta1**t) at update t = 1, 2, ... (Caffe/Kingma-Ba)"),
        _p("beta1", "decay of m, in [0, 1)"), _p("beta2", "decay of v, in [0, 1)"), _p("epsilon", ">= 0"),
    ), "m = beta1 * m + (1 - beta1) * dw; v = beta2 * v + (1 - beta2) * dw**2; "
       "w -= step_size * m / (sqrt(v) + epsilon)."),
    OpSpec("solvers", "adagrad_update", (
        _io("w", "parameter"), _i("dw", "gradient"), _io("h", "running sum of squared gradients"),
        _p("lr", "learning rate"), _p("epsilon", ">= 0"),
    ), "h += dw**2; w -= lr * dw / (sqrt(h) + epsilon) (per element, as Caffe and PyTorch)."),
    OpSpec("solvers", "rmsprop_update", (
        _io("w", "parameter"), _i("dw", "gradient"), _io("h", "running average of squared gradients"),
        _p("lr", "learning rate"), _p("decay", "decay of h, in [0, 1)"), _p("epsilon", ">= 0"),
    ), "h = decay * h + (1 - decay) * dw**2; w -= lr * dw / (sqrt(h) + epsilon)."),
    OpSpec("solvers", "adadelta_update", (
        _io("w", "parameter"), _i("dw", "gradient"), _io("h", "running average of squared gradients"),
        _io("u", "running average of squared updates"), _p("lr", "learning rate (1 for Zeiler's method)"),
        _p("rho", "decay of h and u, in [0, 1)"), _p("epsilon", "> 0"),
    ), "h = rho * h + (1 - rho) * dw**2; d = sqrt(u + epsilon) / sqrt(h + epsilon) * dw; "
       "u = rho * u + (1 - rho) * d**2; w -= lr * d."),
    # --- combine: block copies (concat, crop) and elementwise binary ops ------------------------
    OpSpec("combine", "copy_block", (
        _i("x", "source, any shape with ndim >= 1"),
        _io("y", "destination with x's ndim; only the block is written, the rest keeps its values; must not overlap x"),
        _p("x_start", "per-axis start of the block in x, ints >= 0"),
        _p("y_start", "per-axis start of the block in y, ints >= 0"),
        _p("size", "per-axis size of the block, ints >= 0; start + size fits in x and in y"),
        _p("mirror", "reverse the block's last axis while copying", False),
    ), "y[y_start : y_start + size] = x[x_start : x_start + size], the last axis reversed when mirror "
       "(concat forward/backward, crop forward/backward)."),
    OpSpec("combine", "eltwise_forward", (
        _i("a", "any shape"), _i("b", "same shape"),
        _o("y", "same shape; may be a or b itself (in place)"),
        _p("operation", "one of ('add', 'subtract', 'multiply', 'divide', 'max')"),
        _p("alpha", "coefficient of a", 1.0), _p("beta", "coefficient of b", 1.0),
    ), "y = op(u, v) with u = alpha * a, v = beta * b: u + v, u - v, u * v, u / v, or max: u where u >= v "
       "else v (ties go to a)."),
    OpSpec("combine", "eltwise_backward", (
        _i("a", "forward operand a"), _i("b", "forward operand b"), _i("dy", "gradient w.r.t. y"),
        _o("da", "gradient w.r.t. a, or None to skip it; may be dy itself"),
        _o("db", "gradient w.r.t. b, or None to skip it; may be dy itself"),
        _p("operation", "one of ('add', 'subtract', 'multiply', 'divide', 'max')"),
        _p("alpha", "coefficient of a", 1.0), _p("beta", "coefficient of b", 1.0),
    ), "Gradients of eltwise_forward (u = alpha * a, v = beta * b): add da = alpha dy, db = beta dy; subtract "
       "db = -beta dy; multiply da = alpha v dy, db = beta u dy; divide da = alpha dy / v, db = -beta (u / v) "
       "dy / v; max da = alpha dy where u >= v, db = beta dy where u < v (0 elsewhere)."),
    # --- normalization: local response normalization (Caffe's LRN) and the power function ---------
    OpSpec("normalization", "lrn_forward", (
        _i("x", "(N, C, H, W) input"),
        _o("y", "(N, C, H, W) = x * scale**-beta; not x"),
        _o("scale", "(N, C, H, W) = k + alpha / n * (sum of x**2 over the window), kept for the backward"),
        _p("size", "window length, a positive int; pre = (size - 1) // 2 elements before the centre"),
        _p("alpha", "scale of the window mean, >= 0"),
        _p("beta", "exponent"),
        _p("k", "constant added to the scale, > 0"),
        _p("region", "'across_channels' (window of size channels, n = size) or 'within_channel' "
           "(size x size square of pixels, n = size * size); zero padded", "across_channels"),
    ), "Local response normalization, Caffe's formulas (see mocha_triton.checks.normalization)."),
    OpSpec("normalization", "lrn_backward", (
        _i("x", "(N, C, H, W) forward input"), _i("y", "forward output"), _i("scale", "forward scale"),
        _i("dy", "gradient w.r.t. y"),
        _o("dx", "dy * scale**-beta - 2 alpha beta / n * x * (sum of dy * y / scale over the windows holding "
           "x); not an input"),
        _p("size", "as forward"), _p("alpha", "as forward"), _p("beta", "as forward"),
        _p("region", "as forward", "across_channels"),
    ), "Gradient of lrn_forward from the stored scale (k is inside it)."),
    OpSpec("normalization", "power_forward", (
        _i("x", "any shape"), _o("y", "same shape; may be x itself (in place)"),
        _p("power", "exponent"), _p("scale", "factor of x"), _p("shift", "added after scaling"),
    ), "y = (shift + scale * x)**power with NumPy's rules (negative base, non-integer power: NaN)."),
    OpSpec("normalization", "power_backward", (
        _i("x", "forward input"), _i("dy", "gradient w.r.t. y"),
        _o("dx", "dy * power * scale * (shift + scale * x)**(power - 1), 0 when power or scale is 0; "
           "may be dy itself"),
        _p("power", "exponent"), _p("scale", "factor of x"), _p("shift", "added after scaling"),
    ), "Gradient of power_forward, from x."),
    # --- index: argmax and one-hot encoding along the class axis -----------------------------------
    OpSpec("index", "argmax_forward", (
        _i("x", "(N, C, *S), ndim >= 2, C >= 1"),
        _o("y", "(N, 1, *S) of x's dtype: the 0-based index of the maximum along axis 1, as a float"),
    ), "Argmax along axis 1 (Mocha's ArgmaxLayer): ties go to the first index; a NaN counts as the maximum."),
    OpSpec("index", "index_to_onehot", (
        _LABEL,
        _o("y", "(N, C, *S) float: 1 where c == label, else 0"),
    ), "One-hot encoding along axis 1 (Mocha's Index2OnehotLayer); a label outside [0, C) or not integral is a "
       "ValueError."),
    # --- soft-label softmax loss (loss), Gaussian KL loss (pointwise_loss), channel pooling (pooling) ----
    OpSpec("loss", "softlabel_softmax_loss_forward", (
        _i("x", "(N, C, *S) logits"), _i("target", "same shape: a distribution over C at every position"),
        _o("lse", "(N, *S) log-sum-exp of x along axis 1, kept for the backward"),
        _o("loss", "(1,) sum of -target * max(x - lse, log 1e-20) over all elements / (N * prod(S))"),
    ), "Fused softmax + cross-entropy with a target distribution (Mocha's SoftlabelSoftmaxLossLayer)."),
    OpSpec("loss", "softlabel_softmax_loss_backward", (
        _i("x", "(N, C, *S) logits"), _i("target", "same shape"),
        _i("lse", "(N, *S) from softlabel_softmax_loss_forward"),
        _o("dx", "scale * (softmax(x) - target) / (N * prod(S)), or None"),
        _o("dtarget", "-scale * max(x - lse, log 1e-20) / (N * prod(S)), or None"),
        _p("scale", "loss weight multiplying the gradients", 1.0),
    ), "Gradients of softlabel_softmax_loss_forward (dx is exact when target sums to 1 over axis 1; None for "
       "one not wanted)."),
    OpSpec("pointwise_loss", "gaussian_kl_loss_forward", (
        _i("mu", "(N, ...) means"), _i("sigma", "same shape, standard deviations > 0"),
        _o("loss", "(1,) sum(mu**2 + sigma**2 - 2 log(sigma) - 1) / (2 * N)"),
    ), "KL(N(mu, diag sigma**2) || N(0, I)) averaged over the N samples (Mocha's GaussianKLLossLayer)."),
    OpSpec("pointwise_loss", "gaussian_kl_loss_backward", (
        _i("mu", "(N, ...) means"), _i("sigma", "same shape"),
        _o("dmu", "scale * mu / N, or None"), _o("dsigma", "scale * (sigma - 1 / sigma) / N, or None"),
        _p("scale", "loss weight multiplying the gradients", 1.0),
    ), "Gradients of gaussian_kl_loss_forward (None for one not wanted)."),
    OpSpec("pooling", "max_channel_pool_forward", (
        _i("x", "(M, C, S): the pooled axis in the middle"),
        _o("y", "(M, OC, S), OC from channel_pool_output_size"),
        _o("argmax", "(M, OC, S) int32 channel index c of the first maximum"),
        _p("kernel", "window length, int >= 1"), _p("stride", "int >= 1"),
        _p("pad", "(front, back) zero padding, each in [0, kernel)"),
    ), "Max pooling along axis 1 with Mocha's ChannelPooling windows (see mocha_triton.checks.pooling)."),
    OpSpec("pooling", "max_channel_pool_backward", (
        _i("dy", "(M, OC, S)"), _i("argmax", "(M, OC, S) int32 from max_channel_pool_forward"),
        _o("dx", "(M, C, S); each input gets the sum of dy over the windows whose argmax it is"),
        _p("kernel", "as forward"), _p("stride", "as forward"), _p("pad", "as forward"),
    ), "Channel max pooling gradient (a gather: deterministic, no atomics)."),
    OpSpec("pooling", "mean_channel_pool_forward", (
        _i("x", "(M, C, S)"), _o("y", "(M, OC, S): window sums divided by kernel (Mocha)"),
        _p("kernel", "window length, int >= 1"), _p("stride", "int >= 1"),
        _p("pad", "(front, back) zero padding, each in [0, kernel)"),
    ), "Mean pooling along axis 1; always divides by kernel (padding counts as zeros)."),
    OpSpec("pooling", "mean_channel_pool_backward", (
        _i("dy", "(M, OC, S)"), _o("dx", "(M, C, S): sum of dy / kernel over the windows holding each input"),
        _p("kernel", "as forward"), _p("stride", "as forward"), _p("pad", "as forward"),
    ), "Channel mean pooling gradient."),
    # --- transport: entropic optimal transport by Sinkhorn's iteration (the Wasserstein loss) -------
    OpSpec("transport", "sinkhorn_forward", (
        _i("pred", "(N, P) histograms a: non-negative, each row of the same mass as its target row"),
        _i("target", "(N, Q) histograms b"),
        _i("cost", "(P, Q) ground cost M, shared by the samples"),
        _o("u", "(N, P) row scaling after n_iter iterations u <- a / (K @ (b / (K.T @ u))) from u = 1/P, "
           "K = exp(-lambda_ * M); kept for the backward"),
        _o("v", "(N, Q) column scaling b / (K.T @ u)"),
        _o("sample_loss", "(N,) transport cost <diag(u) K diag(v), M> = u . ((K * M) @ v) of each sample"),
        _o("loss", "(1,) mean of sample_loss over the N samples"),
        _p("lambda_", "entropic regularisation > 0"), _p("n_iter", "Sinkhorn iterations, int >= 1"),
    ), "Sinkhorn's iteration per sample and its transport cost (Mocha's WassersteinLossLayer forward)."),
    OpSpec("transport", "sinkhorn_backward", (
        _i("u", "(N, D) a scaling from sinkhorn_forward: u (gradient w.r.t. pred) or v (w.r.t. target)"),
        _o("dpred", "(N, D) scale * (log u - c) / (lambda_ * N), log of max(u, 1e-20), c the row mean of "
           "log u when center else 0; may be u itself"),
        _p("lambda_", "the forward's lambda_"), _p("scale", "loss weight multiplying the gradient", 1.0),
        _p("center", "subtract each row's mean (Frogner et al.'s zero-sum dual) or not (Mocha)", True),
    ), "Dual potential of the entropic OT problem: its gradient w.r.t. the histogram once Sinkhorn converged."),
    # --- random ---------------------------------------------------------------------------------
    OpSpec("random", "uniform_fill", (
        _o("y", "any shape"), _p("low", "lower bound"), _p("high", "upper bound"),
        _p("seed", "int seed"), _p("offset", "counter offset of the first element", 0),
    ), "y = low + (high - low) * u, u in [0, 1) from Philox4x32-10 as in triton.language.rand."),
    OpSpec("random", "normal_fill", (
        _o("y", "any shape"), _p("mean", "mean"), _p("std", "standard deviation"),
        _p("seed", "int seed"), _p("offset", "counter offset of the first element", 0),
    ), "y = mean + std * z, z from Philox4x32-10 + Box-Muller as in triton.language.randn."),
    OpSpec("random", "dropout_forward", (
        _i("x", "any shape"), _i("rand", "same shape, uniform [0, 1) draws"),
        _o("y", "x * (rand > ratio) * scale; may be x itself"),
        _p("ratio", "drop probability in (0, 1)"), _p("scale", "1 / (1 - ratio) with auto_scale"),
    ), "Dropout with a stored uniform draw (Mocha's rand_vals)."),
    OpSpec("random", "dropout_backward", (
        _i("dy", "any shape"), _i("rand", "the draw used forward"),
        _o("dx", "dy * (rand > ratio) * scale; may be dy itself"),
        _p("ratio", "drop probability"), _p("scale", "the forward scale"),
    ), "Dropout gradient."),
]

OPS: dict[str, OpSpec] = {spec.name: spec for spec in _SPECS}
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(spec.family for spec in _SPECS))


def ops_of_family(family: str) -> list[OpSpec]:
    """The specs of one op family (one module on each backend), in contract order."""
    if family not in FAMILIES:
        raise ValueError(f"unknown op family {family!r}; known: {FAMILIES}")
    return [spec for spec in _SPECS if spec.family == family]


def check_implementation(module: Any, family: str) -> list[str]:
    """Compare a backend module against the contract; return a list of problems (empty when it holds).

    An op is missing, or its parameters differ in name, order, or default.
    """
    import inspect

    problems = []
    for spec in ops_of_family(family):
        fn = getattr(module, spec.name, None)
        if fn is None or not callable(fn):
            problems.append(f"{module.__name__} lacks op {spec.name}")
            continue
        params = list(inspect.signature(fn).parameters.values())
        names = tuple(p.name for p in params)
        if names != spec.arg_names:
            problems.append(f"{module.__name__}.{spec.name}{names} differs from the contract {spec.arg_names}")
            continue
        for param, arg in zip(params, spec.args, strict=True):
            has = param.default is not inspect.Parameter.empty
            if has != arg.has_default or (has and param.default != arg.default):
                problems.append(
                    f"{module.__name__}.{spec.name}: default of {arg.name!r} is "
                    f"{param.default if has else 'missing'}, contract says "
                    f"{arg.default if arg.has_default else 'no default'}"
                )
    return problems
