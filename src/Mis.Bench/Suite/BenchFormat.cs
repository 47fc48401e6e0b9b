using System.Globalization;

namespace Mis.Bench.Suite;

/// <summary>Human units for the benchmark tables.</summary>
public static class BenchFormat
{
    /// <summary>Nanoseconds as ns, µs, ms or s with three significant digits.</summary>
    public static string Duration(double? ns) => ns switch
    {
        null => "n/a",
        < 1_000 => $"{ns.Value.ToString("0.#", CultureInfo.InvariantCulture)} ns",
        < 1_000_000 => $"{(ns.Value / 1e3).ToString("0.##", CultureInfo.InvariantCulture)} µs",
        < 1_000_000_000 => $"{(ns.Value / 1e6).ToString("0.##", CultureInfo.InvariantCulture)} ms",
        _ => $"{(ns.Value / 1e9).ToString("0.##", CultureInfo.InvariantCulture)} s",
    };

    /// <summary>A rate with a k/M suffix.</summary>
    internal static string Rate(double? perSecond, string unit) => perSecond switch
    {
        null => "n/a",
        >= 1e6 => $"{(perSecond.Value / 1e6).ToString("0.##", CultureInfo.InvariantCulture)} M {unit}/s",
        >= 1e3 => $"{(perSecond.Value / 1e3).ToString("0.##", CultureInfo.InvariantCulture)} k {unit}/s",
        _ => $"{perSecond.Value.ToString("0.#", CultureInfo.InvariantCulture)} {unit}/s",
    };

    /// <summary>A ratio as "×1.23".</summary>
    public static string Ratio(double? ratio) => ratio is double r && double.IsFinite(r) ? $"×{r.ToString("0.00", CultureInfo.InvariantCulture)}" : "n/a";

    /// <summary>A Markdown table with aligned columns (the README's; its generator parses it), or a console one (<see cref="TextTable"/>).</summary>
    public static string Table(IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows, bool markdown)
    {
        if (!markdown)
            return TextTable.Render(header, rows);
        var all = new List<IReadOnlyList<string>> { header };
        all.AddRange(rows);
        int columns = header.Count;
        var widths = Enumerable.Range(0, columns).Select(c => all.Max(r => r[c].Length)).ToArray();
        var w = new StringWriter();
        for (int i = 0; i < all.Count; i++)
        {
            var cells = all[i].Select((cell, c) => cell.PadRight(widths[c]));
            w.WriteLine($"| {string.Join(" | ", cells)} |");
            if (i == 0)
                w.WriteLine($"| {string.Join(" | ", widths.Select(x => new string('-', x)))} |");
        }
        return w.ToString();
    }
}
