using Mis.Torch;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mis.Gym.Agents;

/// <summary>Hidden-layer nonlinearity of an <see cref="Mlp"/>.</summary>
public enum Activation
{
    /// <summary><c>tanh</c>, as CleanRL's PPO uses.</summary>
    Tanh,

    /// <summary><c>max(0, x)</c>, as CleanRL's DQN uses.</summary>
    Relu,
}

/// <summary>
/// A small fully connected network (linear layers with a nonlinearity between them) for the PPO and
/// DQN agents, trained with TorchSharp. Weights are initialised from the agent's own seeded
/// <see cref="Random"/> (orthogonal, biases 0, as CleanRL's <c>layer_init</c>), never from torch's
/// global generator, so agents made in parallel cannot disturb each other's initial weights.
/// </summary>
public sealed class Mlp : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<Linear> layers;
    private readonly Activation _activation;

    /// <summary>Makes the network and initialises it.</summary>
    /// <param name="name">Module name (part of the saved file's keys).</param>
    /// <param name="sizes">Input size, hidden sizes, output size.</param>
    /// <param name="activation">Nonlinearity between layers.</param>
    /// <param name="random">Source of the initial weights.</param>
    /// <param name="outputGain">Scale of the last layer's weights (CleanRL: 0.01 for a policy head, so the first policy is near uniform; 1 for values).</param>
    internal Mlp(string name, int[] sizes, Activation activation, Random random, double outputGain) : base(name)
    {
        TorchRuntime.EnsureLoaded();
        _activation = activation;
        layers = new ModuleList<Linear>([.. sizes.Zip(sizes.Skip(1), (inputs, outputs) => nn.Linear(inputs, outputs))]);
        RegisterComponents();
        using var noGrad = no_grad();
        for (int i = 0; i < layers.Count; i++)
        {
            double gain = i == layers.Count - 1 ? outputGain : Math.Sqrt(2);
            var w = Orthogonal((int)layers[i].weight!.shape[0], (int)layers[i].weight!.shape[1], gain, random);
            using var wt = tensor(w, layers[i].weight!.shape);
            layers[i].weight!.copy_(wt);
            layers[i].bias!.zero_();
        }
    }

    /// <summary>The layers, input first.</summary>
    internal IList<Linear> Layers => layers;

    /// <summary>The nonlinearity.</summary>
    internal Activation Activation => _activation;

    /// <summary>[batch, inputs] → [batch, outputs].</summary>
    public override Tensor forward(Tensor x)
    {
        for (int i = 0; i < layers.Count - 1; i++)
            x = _activation == Activation.Tanh ? layers[i].call(x).tanh() : layers[i].call(x).relu();
        return layers[layers.Count - 1].call(x);
    }

    /// <summary>Copies every parameter of <paramref name="source"/> (same shape) into this network: <c>this = tau·source + (1 − tau)·this</c>.</summary>
    internal void Blend(Mlp source, double tau)
    {
        using var noGrad = no_grad();
        // Held until the loop ends: an implicit scalar can be freed by a collection mid-call (Mis.Torch.Adam).
        using Scalar keep = (1 - tau).ToScalar(), take = tau.ToScalar();
        foreach (var (mine, theirs) in parameters().Zip(source.parameters()))
        {
            if (tau >= 1)
                mine.copy_(theirs);
            else
                mine.mul_(keep).add_(theirs, alpha: take);
        }
    }

    /// <summary>
    /// A row-major [rows, cols] matrix with orthonormal rows or columns (whichever are fewer),
    /// times <paramref name="gain"/>: Gram–Schmidt on a Gaussian matrix from <paramref name="random"/>.
    /// </summary>
    internal static float[] Orthogonal(int rows, int cols, double gain, Random random)
    {
        // Orthonormalise the n vectors of length m (n ≤ m), then lay them out as rows or columns.
        int n = Math.Min(rows, cols), m = Math.Max(rows, cols);
        var v = new double[n, m];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < m; j++)
                v[i, j] = Gaussian(random);
            for (int k = 0; k < i; k++)
            {
                double dot = 0;
                for (int j = 0; j < m; j++)
                    dot += v[i, j] * v[k, j];
                for (int j = 0; j < m; j++)
                    v[i, j] -= dot * v[k, j];
            }
            double norm = 0;
            for (int j = 0; j < m; j++)
                norm += v[i, j] * v[i, j];
            norm = Math.Sqrt(norm);
            for (int j = 0; j < m; j++)
                v[i, j] /= norm;
        }
        var w = new float[rows * cols];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++)
                w[r * cols + c] = (float)(gain * (rows <= cols ? v[r, c] : v[c, r]));
        }
        return w;
    }

    // Box–Muller: a standard normal from two uniforms.
    private static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}

/// <summary>
/// A managed copy of an <see cref="Mlp"/>'s weights that evaluates one observation without touching
/// torch: acting happens on every step, and a single-row forward pass through TorchSharp costs
/// several native calls and tensor allocations where this costs a few thousand multiply-adds.
/// It is refreshed from the network after every update, so it computes the same function (up to
/// float rounding order); its result depends only on the weights, so it is deterministic.
/// </summary>
public sealed class MlpMirror
{
    private readonly float[][] _weights;
    private readonly float[][] _biases;
    private readonly int[] _sizes;
    private readonly Activation _activation;
    private readonly float[] _a, _b;

    /// <summary>Makes a mirror of <paramref name="net"/> and copies its weights.</summary>
    internal MlpMirror(Mlp net)
    {
        _activation = net.Activation;
        _sizes = [(int)net.Layers[0].weight!.shape[1], .. net.Layers.Select(l => (int)l.weight!.shape[0])];
        _weights = [.. net.Layers.Select(l => new float[l.weight!.numel()])];
        _biases = [.. net.Layers.Select(l => new float[l.bias!.numel()])];
        _a = new float[_sizes.Max()];
        _b = new float[_sizes.Max()];
        Refresh(net);
    }

    /// <summary>Copies the network's current weights.</summary>
    internal void Refresh(Mlp net)
    {
        for (int i = 0; i < _weights.Length; i++)
        {
            net.Layers[i].weight!.data<float>().CopyTo(_weights[i]);
            net.Layers[i].bias!.data<float>().CopyTo(_biases[i]);
        }
    }

    /// <summary>The network's output for one input; valid until the next call.</summary>
    internal ReadOnlySpan<float> Forward(ReadOnlySpan<float> input)
    {
        input.CopyTo(_a);
        float[] x = _a, y = _b;
        for (int layer = 0; layer < _weights.Length; layer++)
        {
            int inputs = _sizes[layer], outputs = _sizes[layer + 1];
            var w = _weights[layer];
            bool hidden = layer < _weights.Length - 1;
            for (int o = 0; o < outputs; o++)
            {
                float sum = _biases[layer][o];
                var row = w.AsSpan(o * inputs, inputs);
                for (int i = 0; i < inputs; i++)
                    sum += row[i] * x[i];
                y[o] = !hidden ? sum : _activation == Activation.Tanh ? MathF.Tanh(sum) : MathF.Max(0f, sum);
            }
            (x, y) = (y, x);
        }
        return x.AsSpan(0, _sizes[^1]);
    }
}
