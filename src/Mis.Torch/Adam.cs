using TorchSharp;
using static TorchSharp.torch;

namespace Mis.Torch;

/// <summary>
/// TorchSharp's Adam with a step that keeps its scalars alive while libtorch reads them. Use it
/// instead of <c>torch.optim.Adam</c> everywhere in MIS.
/// </summary>
/// <remarks>
/// <para>
/// TorchSharp 0.107's own <c>Adam.step</c> passes coefficients such as <c>1 - beta1</c> as
/// temporary <see cref="Scalar"/>s made by implicit conversion from <see cref="double"/>. A
/// <see cref="Scalar"/> owns a native <c>c10::Scalar</c> that its finalizer frees, and TorchSharp
/// hands only the native pointer to libtorch: once the pointer is read the managed object is
/// unreachable, so a garbage collection triggered by any other thread during the native call can
/// finalize it and free the <c>c10::Scalar</c> while libtorch still reads it. libtorch then finds
/// a garbage type tag and throws "Expected false to be true … Exception raised from toFloat at
/// c10/core/Scalar.h" (or <c>toDouble</c>, or <c>type</c>): the crash seen under load, where
/// other threads (the event pump, the anomaly monitors, the gym) allocate and collect often.
/// </para>
/// <para>
/// Here every scalar of a step is a local held by a <c>using</c> declaration, so it stays
/// reachable until the native calls that read it have returned. The state, the saved state file
/// and its type name ("Adam") are TorchSharp's, so optimizer files saved before load unchanged.
/// Only plain Adam is supported (no AMSGrad, maximize or weight decay: MIS uses none).
/// </para>
/// </remarks>
public sealed class Adam : TorchSharp.Modules.Adam
{
    /// <summary>Adam over <paramref name="parameters"/> with learning rate <paramref name="lr"/>, betas (0.9, 0.999) and <paramref name="eps"/>.</summary>
    public Adam(IEnumerable<TorchSharp.Modules.Parameter> parameters, double lr, double eps = 1e-8) : base(parameters, lr, eps: eps)
    {
        TorchRuntime.EnsureLoaded();
    }

    /// <summary>One Adam update of every parameter that has a gradient (PyTorch's algorithm, bias-corrected).</summary>
    /// <param name="closure">Not supported (MIS computes its losses before stepping); must be null.</param>
    /// <returns>Null.</returns>
    public override Tensor step(Func<Tensor>? closure = null)
    {
        if (closure is not null)
            throw new NotSupportedException("Mis.Torch.Adam.step takes no closure");
        return _step<ParamGroup>(group =>
        {
            var o = (Options)group.Options;
            if (o.amsgrad == true || o.maximize == true || o.weight_decay is not (null or 0))
                throw new NotSupportedException("Mis.Torch.Adam supports plain Adam only (no amsgrad, maximize or weight_decay)");
            double beta1 = o.beta1!.Value, beta2 = o.beta2!.Value, lr = o.LearningRate!.Value;
            using Scalar decay1 = beta1.ToScalar(), rest1 = (1 - beta1).ToScalar();
            using Scalar decay2 = beta2.ToScalar(), rest2 = (1 - beta2).ToScalar(), eps = o.eps!.Value.ToScalar(), one = 1.0.ToScalar();
            foreach (var param in group.Parameters)
            {
                using var grad = param.grad;
                if (grad is null)
                    continue;
                var state = (State)_state[param.Handle];
                state.step += 1;
                using Scalar correction2 = Math.Sqrt(1 - Math.Pow(beta2, state.step)).ToScalar();
                using Scalar stepSize = (-lr / (1 - Math.Pow(beta1, state.step))).ToScalar();
                state.exp_avg.mul_(decay1).add_(grad, alpha: rest1);
                state.exp_avg_sq.mul_(decay2).addcmul_(grad, grad, value: rest2);
                using var denominator = state.exp_avg_sq.sqrt(); // the one temporary of a step, freed now rather than by the GC
                denominator.div_(correction2).add_(eps, alpha: one); // add_(eps) alone would make a temporary alpha of 1
                param.addcdiv_(state.exp_avg, denominator, value: stepSize);
            }
        }, closure);
    }
}
