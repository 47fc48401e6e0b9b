using System.CommandLine;

namespace Mis.Cli.Commands;

/// <summary><c>mis config check FILE</c>: validates a config.toml without starting anything.</summary>
public static class ConfigCommand
{
    internal static Command Create()
    {
        var file = new Argument<FileInfo>("FILE") { Description = "The config.toml to validate." };
        var check = new Command("check",
            "Validate a config.toml: every error names file, line and key. Exit status 0 when valid, 2 when not.")
        {
            file,
        };
        check.SetAction(result =>
        {
            var loaded = ConfigOption.Load(result.GetValue(file));
            if (loaded is null)
                return 2;
            var defcon = loaded.Value.Config.Defcon;
            Console.WriteLine($"{loaded.Value.Source}: valid. DEFCON 4/3/2/1 at {string.Join(" / ", defcon.Thresholds)} violations; " +
                              $"slowdown {string.Join(" / ", defcon.SlowdownUs)} us at DEFCON 4/3/2.");
            return 0;
        });
        return new Command("config", "Work with config.toml files (config/config.toml documents every key and default).") { check };
    }
}
