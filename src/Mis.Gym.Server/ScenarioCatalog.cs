using Grpc.Core;
using Mis.Native;

namespace Mis.Gym.Server;

/// <summary>
/// The scenarios a Gym server offers: the <c>*.toml</c> files under one directory, named by their
/// path below it without the extension (<c>data-shortcut</c>, <c>sub/name</c>). A client names a
/// scenario, never a file: a name that is absolute, or that leaves the directory by <c>..</c> or
/// through a symbolic link, is refused, so a client cannot make the server read files it did not
/// choose to offer.
/// </summary>
public sealed class ScenarioCatalog
{
    private const string Extension = ".toml";
    private readonly string _root;

    /// <summary>A catalog of <paramref name="directory"/>.</summary>
    /// <exception cref="DirectoryNotFoundException">The directory does not exist.</exception>
    internal ScenarioCatalog(string directory)
    {
        string full = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(full))
            throw new DirectoryNotFoundException($"the scenarios directory {full} does not exist");
        Directory = full;
        _root = PosixFiles.RealPath(full) ?? full;
    }

    /// <summary>The directory, as given (absolute).</summary>
    internal string Directory { get; }

    /// <summary>The scenario names, sorted (files that resolve outside the directory are left out).</summary>
    internal IReadOnlyList<string> Names() =>
        Files(Directory)
            .Where(f => Inside(PosixFiles.RealPath(f)))
            .Select(f => Path.GetRelativePath(Directory, f)[..^Extension.Length].Replace(Path.DirectorySeparatorChar, '/'))
            .Order(StringComparer.Ordinal)
            .ToList();

    // The *.toml files below dir. Linked directories are not entered: one may point outside or
    // back up the tree (a loop); files reached through them are refused by Resolve anyway.
    private static IEnumerable<string> Files(string dir)
    {
        var flat = new EnumerationOptions { RecurseSubdirectories = false, IgnoreInaccessible = true, AttributesToSkip = 0 };
        var subdirs = new EnumerationOptions { RecurseSubdirectories = false, IgnoreInaccessible = true, AttributesToSkip = FileAttributes.ReparsePoint };
        foreach (string file in System.IO.Directory.EnumerateFiles(dir, "*" + Extension, flat))
            yield return file;
        foreach (string sub in System.IO.Directory.EnumerateDirectories(dir, "*", subdirs))
        {
            foreach (string file in Files(sub))
                yield return file;
        }
    }

    /// <summary>The file of scenario <paramref name="name"/> (<c>.toml</c> optional).</summary>
    /// <returns>The file's path and the name without the extension.</returns>
    /// <exception cref="RpcException">INVALID_ARGUMENT for an empty, absolute or escaping name; NOT_FOUND when there is no such file.</exception>
    internal (string Path, string Name) Resolve(string name)
    {
        if (string.IsNullOrWhiteSpace(name))
            throw Invalid($"scenario is empty: name one of {Known()}");
        if (name.Contains('\0', StringComparison.Ordinal) || Path.IsPathRooted(name))
            throw Invalid($"scenario \"{name}\" is a path; name a scenario under the server's scenarios directory: {Known()}");
        string bare = name.EndsWith(Extension, StringComparison.Ordinal) ? name[..^Extension.Length] : name;
        string file = Path.GetFullPath(Path.Combine(Directory, bare + Extension));
        if (!file.StartsWith(Directory + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw Invalid($"scenario \"{name}\" leaves the scenarios directory; name one of {Known()}");
        if (!File.Exists(file))
            throw new RpcException(new Status(StatusCode.NotFound, $"no scenario \"{bare}\" in {Directory}; known: {Known()}"));
        if (!Inside(PosixFiles.RealPath(file)))
            throw Invalid($"scenario \"{name}\" is a link to a file outside the scenarios directory; name one of {Known()}");
        return (file, bare);
    }

    private bool Inside(string? real) => real is not null && real.StartsWith(_root + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    private string Known()
    {
        var names = Names();
        return names.Count == 0 ? $"(none: {Directory} has no *{Extension} files)" : string.Join(", ", names);
    }

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));
}
