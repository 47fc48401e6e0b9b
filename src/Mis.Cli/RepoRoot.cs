namespace Mis.Cli;

/// <summary>Finds the MIS checkout this CLI belongs to (for commands that work on the repository).</summary>
public static class RepoRoot
{
    /// <summary>
    /// <c>$MIS_HOME</c> when the <c>./mis</c> launcher set it, else the nearest directory above
    /// the binary that holds <c>MIS.sln</c>.
    /// </summary>
    internal static string Find()
    {
        var home = Environment.GetEnvironmentVariable("MIS_HOME");
        if (!string.IsNullOrEmpty(home) && File.Exists(Path.Combine(home, "MIS.sln")))
            return home;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MIS.sln")))
                return dir.FullName;
        throw new InvalidOperationException(
            "cannot find the MIS repository (no MIS.sln above the mis binary); run ./mis from a checkout or set MIS_HOME");
    }
}
