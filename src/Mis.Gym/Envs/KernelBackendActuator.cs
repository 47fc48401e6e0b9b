using System.Globalization;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Envs;

/// <summary>
/// The kernel backend's actuator: a python3 loop, <c>native/actuator/actuator.py</c> (embedded in
/// this assembly; the protocol is written there), run with <c>-I -S -u -c</c> so it reads no file
/// but its interpreter's once, at startup, at DEFCON 5. It reads one command per line on stdin,
/// performs it as real syscalls and writes <c>errno elapsed_ns</c> on stdout.
/// </summary>
public static class KernelBackendActuator
{
    /// <summary>The interpreter.</summary>
    internal const string Python = "/usr/bin/python3";

    private const string ResourceName = "Mis.Gym.actuator.py";

    /// <summary>The loop's source, passed to the interpreter with <c>-c</c>.</summary>
    internal static string Script { get; } = ReadScript();

    private static string ReadScript()
    {
        using var stream = typeof(KernelBackendActuator).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"the actuator script {ResourceName} is not embedded in {typeof(KernelBackendActuator).Assembly.GetName().Name}");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>The command line that performs <paramref name="action"/>.</summary>
    internal static string Command(ScenarioAction action) => action.Kind switch
    {
        ActionKind.Read => $"r\t{action.Path}",
        ActionKind.Write => $"w\t{action.Path}",
        ActionKind.List => $"l\t{action.Path}",
        ActionKind.Exec => string.Join('\t', new[] { "x", action.Path! }.Concat(action.Args)),
        ActionKind.Connect or ActionKind.Send =>
            $"{(action.Kind == ActionKind.Connect ? 'c' : 's')}\t{action.Address}\t{action.Port.ToString(CultureInfo.InvariantCulture)}\t{action.Protocol.ToString().ToLowerInvariant()}",
        ActionKind.Wait => $"z\t{action.WaitMs.ToString(CultureInfo.InvariantCulture)}",
        _ => "n",
    };
}
