using Mis.Bench.Suite;

namespace Mis.Cli.Tests;

/// <summary>The console tables (Spectre.Console): plain text, aligned, never folded; the Markdown ones unchanged.</summary>
public sealed class TextTableTests
{
    private static readonly string[] Header = ["configuration", "ns per call", "ratio to bare"];

    private static readonly IReadOnlyList<string>[] Rows =
    [
        ["bare", "61.2", "×1.00"],
        ["MIS managed, with a description long enough to pass eighty columns on its own line", "1234.5", "×20.17"],
    ];

    [Fact]
    public void A_console_table_is_plain_text_with_aligned_columns_and_numbers_to_the_right()
    {
        string text = BenchFormat.Table(Header, Rows, markdown: false);
        Assert.DoesNotContain('\u001b', text);
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToList();
        Assert.Equal(2 + 1 + Rows.Length + 1, lines.Count); // top border, header, rule, rows, bottom border
        Assert.All(lines, l => Assert.Equal(lines[0].Length, l.Length));
        Assert.Contains(lines, l => l.Contains(Rows[1][0], StringComparison.Ordinal)); // not folded to 80 columns
        string bare = lines.Single(l => l.Contains("bare ", StringComparison.Ordinal) && !l.Contains("ratio", StringComparison.Ordinal));
        string managed = lines.Single(l => l.Contains("MIS managed", StringComparison.Ordinal));
        Assert.Equal(managed.IndexOf("1234.5", StringComparison.Ordinal) + "1234.5".Length, bare.IndexOf("61.2", StringComparison.Ordinal) + "61.2".Length);
    }

    [Fact]
    public void The_markdown_table_the_README_parses_keeps_its_format()
    {
        Assert.Equal(
            "| a    | b |\n| ---- | - |\n| left | 1 |\n".ReplaceLineEndings(),
            BenchFormat.Table(["a", "b"], [["left", "1"]], markdown: true));
    }
}
