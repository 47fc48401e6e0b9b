using System.CommandLine;
using Mis.Enforcer.Configuration;

namespace Mis.Cli.Commands;

/// <summary>The shared <c>--config FILE</c> option and how a command resolves it.</summary>
public static class ConfigOption
{
    internal static Option<FileInfo?> Create() => new("--config")
    {
        HelpName = "FILE",
        Description = "config.toml to use (default: $MIS_CONFIG if set, else built-in defaults; config/config.toml documents every key).",
    };

    /// <summary>The configuration and where it came from; a broken file is reported and returns null.</summary>
    internal static (MisConfig Config, string Source)? Load(FileInfo? file)
    {
        string? env = Environment.GetEnvironmentVariable("MIS_CONFIG");
        string? path = file?.FullName ?? (string.IsNullOrEmpty(env) ? null : env);
        if (path is null)
            return (MisConfig.Default, "built-in defaults");
        try
        {
            return (MisConfig.Load(path), path);
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"mis: {e.Message}");
            return null;
        }
    }
}
