using System.CommandLine;
using System.Reflection;

namespace Mis.Cli.Tests.Deploy;

/// <summary>
/// Checks a <c>mis</c> command line written into a deployment file against the CLI's own
/// System.CommandLine tree, without running it: every subcommand, option and argument count must
/// be one the CLI accepts.
/// </summary>
internal static class CliCommandLine
{
    // The top-level commands are each built by an internal static Create() in Mis.Cli.Commands,
    // the methods Program.Main lists; the test assembly sees them through InternalsVisibleTo.
    private static readonly Lazy<RootCommand> Root = new(() =>
    {
        var root = new RootCommand();
        var creators = typeof(RepoRoot).Assembly.GetTypes()
            .Where(t => t.Namespace == "Mis.Cli.Commands")
            .Select(t => t.GetMethod("Create", BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public, Type.EmptyTypes))
            .Where(m => m is not null && m.ReturnType == typeof(Command));
        foreach (var create in creators)
            root.Subcommands.Add((Command)create!.Invoke(null, null)!);
        return root;
    });

    /// <summary>The parse errors of <c>mis ARGS</c> (none when the CLI accepts it), and the subcommand path it reaches.</summary>
    internal static (IReadOnlyList<string> Errors, string Command) Parse(IReadOnlyList<string> args)
    {
        var result = Root.Value.Parse(args.ToArray());
        var path = new List<string>();
        for (var c = result.CommandResult; c.Parent is System.CommandLine.Parsing.CommandResult parent; c = parent)
            path.Insert(0, c.Command.Name);
        return (result.Errors.Select(e => e.Message).ToList(), string.Join(' ', path));
    }

    /// <summary>The top-level subcommands the CLI has (enough to be sure the tree was found).</summary>
    internal static IReadOnlyList<string> TopLevel => Root.Value.Subcommands.Select(c => c.Name).ToList();
}
