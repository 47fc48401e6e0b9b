namespace Mis.Bench.Micro;

/// <summary>Finds the checkout (scenarios and the corpus live there): <c>$MIS_HOME</c>, else the nearest directory above holding MIS.sln.</summary>
public static class Repository
{
    internal static string Root
    {
        get
        {
            string? home = Environment.GetEnvironmentVariable("MIS_HOME");
            if (!string.IsNullOrEmpty(home) && File.Exists(Path.Combine(home, "MIS.sln")))
                return home;
            // BenchmarkDotNet runs each benchmark in a child process built under bin/; both it and
            // `dotnet run` start below the checkout, as does the working directory.
            foreach (string start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
                for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                    if (File.Exists(Path.Combine(dir.FullName, "MIS.sln")))
                        return dir.FullName;
            throw new InvalidOperationException("cannot find the MIS checkout (no MIS.sln above); set MIS_HOME");
        }
    }
}
