using Spectre.Console;
using Spectre.Console.Rendering;

namespace Mis.Bench.Suite;

/// <summary>
/// A table for people on the console, drawn by Spectre.Console: a rounded border, numbers right
/// aligned, plain text (no colours, no escape sequences, so a redirected copy reads the same).
/// Markdown tables, which the README and reports parse, are <see cref="BenchFormat.Table"/>'s.
/// </summary>
public static class TextTable
{
    // Wide enough for any of MIS's tables: a table is never folded into the width of a pipe's
    // default 80 columns; a narrow terminal wraps the long lines as it wraps any.
    private const int Width = 1000;

    /// <summary>The table as text, a line per row.</summary>
    public static string Render(IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows)
    {
        ArgumentNullException.ThrowIfNull(header);
        var body = rows.ToList();
        var table = new Table().Border(TableBorder.Rounded);
        for (int c = 0; c < header.Count; c++)
        {
            bool numeric = body.Count > 0 && body.All(r => IsNumber(r[c]));
            table.AddColumn(new TableColumn(new Text(header[c])) { Alignment = numeric ? Justify.Right : Justify.Left });
        }
        foreach (var row in body)
            table.AddRow(row.Select(cell => (IRenderable)new Text(cell)));

        var text = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(text),
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        console.Profile.Width = Width;
        console.Profile.Capabilities.Unicode = true;
        console.Write(table);
        return text.ToString();
    }

    // "12.3 µs", "×1.05", "+3.1 ns", "n/a", "" — a figure, right aligned; anything else reads left.
    private static bool IsNumber(string cell) =>
        cell.Length == 0 || cell == "n/a" || char.IsAsciiDigit(cell[0]) || (cell.Length > 1 && cell[0] is '×' or '+' or '-' && char.IsAsciiDigit(cell[1]));
}
