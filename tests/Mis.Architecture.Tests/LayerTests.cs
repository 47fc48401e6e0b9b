using System.Reflection;
using System.Runtime.CompilerServices;
using NetArchTest.Rules;

namespace Mis.Architecture.Tests;

/// <summary>The product's assemblies and what each may reach.</summary>
internal static class Layers
{
    /// <summary>Every assembly built from src/ (the command line is <c>mis</c>).</summary>
    internal static readonly string[] Product =
    [
        "Mis.Native", "Mis.Enforcer", "Mis.Torch", "Mis.Anomaly", "Mis.Gym", "Mis.Gym.Agents", "Mis.Gym.Experiments",
        "Mis.Server", "Mis.Gym.Server", "Mis.Bench", "mis",
    ];

    /// <summary>The heavy machine-learning and plotting libraries.</summary>
    internal static readonly string[] Heavy = ["TorchSharp", "Microsoft.ML", "ScottPlot"];

    /// <summary><paramref name="name"/> and every assembly it references, transitively (framework assemblies included).</summary>
    internal static IReadOnlySet<string> Closure(string name)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<AssemblyName>([new AssemblyName(name)]);
        while (pending.TryPop(out var next))
        {
            if (!seen.Add(next.Name!))
                continue;
            Assembly assembly;
            try
            {
                assembly = Assembly.Load(next);
            }
            catch (FileNotFoundException)
            {
                continue; // a facade the runtime never needs
            }
            foreach (var reference in assembly.GetReferencedAssemblies())
                pending.Push(reference);
        }
        return seen;
    }
}

/// <summary>
/// Dependencies point one way, by weight: the policy server never reaches TorchSharp, ML.NET or
/// ScottPlot (nor Spectre.Console: terminal drawing is the command line's); the environment core neither; the enforcer reaches nothing of the gym, the models or
/// the servers; only test projects see internals.
/// </summary>
public sealed class LayerTests
{
    public static TheoryData<string, string[]> Forbidden => new()
    {
        { "Mis.Native", [.. Layers.Product.Except(["Mis.Native"]), .. Layers.Heavy, "Tomlyn"] },
        { "Mis.Enforcer", [.. Layers.Product.Except(["Mis.Native", "Mis.Enforcer"]), .. Layers.Heavy] },
        { "Mis.Torch", [.. Layers.Product.Except(["Mis.Torch"]), "Microsoft.ML", "ScottPlot"] },
        { "Mis.Anomaly", ["Mis.Gym", "Mis.Gym.Agents", "Mis.Gym.Experiments", "Mis.Server", "Mis.Gym.Server", "Mis.Bench", "mis"] },
        { "Mis.Gym", [.. Layers.Heavy, "Mis.Torch", "Mis.Anomaly", "Mis.Gym.Agents", "Mis.Gym.Experiments", "Mis.Server", "Mis.Gym.Server", "Mis.Bench", "mis"] },
        { "Mis.Gym.Agents", ["ScottPlot", "Microsoft.ML", "Mis.Anomaly", "Mis.Gym.Experiments", "Mis.Server", "Mis.Gym.Server", "Mis.Bench", "mis"] },
        { "Mis.Gym.Experiments", ["Microsoft.ML", "Mis.Anomaly", "Mis.Server", "Mis.Gym.Server", "Mis.Bench", "mis"] },
        { "Mis.Server", [.. Layers.Heavy, "Spectre.Console", "Mis.Torch", "Mis.Anomaly", "Mis.Gym", "Mis.Gym.Agents", "Mis.Gym.Experiments", "Mis.Gym.Server", "Mis.Bench", "mis"] },
        { "Mis.Gym.Server", [.. Layers.Heavy, "Mis.Torch", "Mis.Anomaly", "Mis.Gym.Agents", "Mis.Gym.Experiments", "Mis.Bench", "mis"] },
    };

    [Theory]
    [MemberData(nameof(Forbidden))]
    public void An_assembly_reaches_nothing_above_or_beside_it(string assembly, string[] forbidden)
    {
        var reached = Layers.Closure(assembly);
        var violations = forbidden.Where(reached.Contains).ToList();
        Assert.True(violations.Count == 0, $"{assembly} reaches {string.Join(", ", violations)} (through its references)");
    }

    [Theory]
    [MemberData(nameof(Forbidden))]
    public void No_type_of_an_assembly_uses_a_namespace_it_must_not_reach(string assembly, string[] forbidden)
    {
        // The type-level view of the same rule: a reference could be dropped while a type still
        // names the namespace through another path (reflection by name, a facade).
        var namespaces = forbidden.Select(name => name == "mis" ? "Mis.Cli" : name).ToArray();
        var result = Types.InAssembly(Assembly.Load(assembly)).Should().NotHaveDependencyOnAny(namespaces).GetResult();
        Assert.True(result.IsSuccessful, $"{assembly} types that use {string.Join(", ", namespaces)}: {string.Join(", ", result.FailingTypeNames ?? [])}");
    }

    [Fact]
    public void The_rules_can_fail()
    {
        // Guards the rules above against passing vacuously: the command line does reach all of these.
        var reached = Layers.Closure("mis");
        Assert.All(Layers.Product.Concat(["TorchSharp", "ScottPlot"]), name => Assert.Contains(name, reached));
        Assert.False(Types.InAssembly(Assembly.Load("Mis.Gym.Agents")).Should().NotHaveDependencyOn("TorchSharp").GetResult().IsSuccessful);
    }

    [Theory]
    [MemberData(nameof(ProductAssemblies))]
    public void Internals_are_visible_to_test_projects_only(string assembly)
    {
        var friends = Assembly.Load(assembly).GetCustomAttributes<InternalsVisibleToAttribute>().Select(a => a.AssemblyName).ToList();
        var notTests = friends.Where(name => !name.EndsWith(".Tests", StringComparison.Ordinal)).ToList();
        Assert.True(notTests.Count == 0, $"{assembly} shows its internals to {string.Join(", ", notTests)}: make what they use public instead");
    }

    public static TheoryData<string> ProductAssemblies => [.. Layers.Product];
}
