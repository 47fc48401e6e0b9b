using System.Runtime.InteropServices;

namespace Mis.Gym.Agents;

/// <summary>
/// The plumbing of an agent's save directory: an identity file that says which agent and
/// configuration wrote it (a load into a differently configured agent is refused, instead of
/// failing later on a tensor shape), and binary arrays for buffers and counters.
/// </summary>
public static class AgentFiles
{
    private const string IdentityFile = "agent.txt";

    /// <summary>Creates <paramref name="directory"/> and writes <paramref name="identity"/> into it.</summary>
    internal static void WriteIdentity(string directory, string identity)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, IdentityFile), identity);
    }

    /// <summary>Checks that <paramref name="directory"/> was written by an agent with <paramref name="identity"/>.</summary>
    /// <exception cref="DirectoryNotFoundException">There is no saved agent in <paramref name="directory"/>.</exception>
    /// <exception cref="InvalidOperationException">The saved agent's algorithm, sizes or configuration differ; the message shows both.</exception>
    internal static void CheckIdentity(string directory, string identity)
    {
        string path = Path.Combine(directory, IdentityFile);
        if (!File.Exists(path))
            throw new DirectoryNotFoundException($"no saved agent in {directory} (no {IdentityFile})");
        string saved = File.ReadAllText(path);
        if (saved != identity)
            throw new InvalidOperationException($"the agent saved in {directory} was made as\n  {saved}\nbut this agent is\n  {identity}\nCreate the agent with the same algorithm, sizes and hyperparameters before loading.");
    }

    /// <summary>Writes a length-prefixed array: the values' bytes as they are in memory (little-endian on x86-64, as <see cref="BinaryWriter"/> writes them one by one).</summary>
    internal static void Write<T>(BinaryWriter writer, ReadOnlySpan<T> values) where T : unmanaged
    {
        writer.Write(values.Length);
        writer.Write(MemoryMarshal.AsBytes(values));
    }

    /// <summary>Reads a length-prefixed array into <paramref name="into"/>, which must have that length.</summary>
    /// <exception cref="InvalidDataException">The saved length differs, or the file ends inside the array.</exception>
    internal static void Read<T>(BinaryReader reader, Span<T> into) where T : unmanaged
    {
        int length = reader.ReadInt32();
        if (length != into.Length)
            throw new InvalidDataException($"saved array has {length} elements, expected {into.Length}");
        var bytes = MemoryMarshal.AsBytes(into);
        for (int done = 0; done < bytes.Length;)
        {
            int n = reader.Read(bytes[done..]);
            if (n == 0)
                throw new InvalidDataException($"saved array of {length} elements is cut short");
            done += n;
        }
    }

    /// <summary>
    /// The sampling generator of an agent resumed after <paramref name="steps"/> steps.
    /// <see cref="Random"/>'s state cannot be saved, so a resumed agent draws from a new stream
    /// derived from its seed and step count: a resume is repeatable, but its draws differ from
    /// those of a run that never stopped.
    /// </summary>
    internal static Random ResumedRandom(int seed, long steps) => new(unchecked((int)((seed * 1_000_003L) ^ steps ^ (steps >> 32))));
}
