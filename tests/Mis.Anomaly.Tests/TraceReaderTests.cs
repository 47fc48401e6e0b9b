using Mis.Anomaly.Traces;

namespace Mis.Anomaly.Tests;

/// <summary>Both trace forms read back exactly; bad input fails with the file and line named.</summary>
public sealed class TraceReaderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mis-traces-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string relative, string text)
    {
        string path = Path.Combine(_dir, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void Plain_file_is_one_trace_over_any_whitespace_and_lines()
    {
        string path = Write("a.txt", "6 6 63 42  120\n\t5 3\r\n");
        var trace = Assert.Single(TraceReader.Read(path));
        Assert.Equal([6, 6, 63, 42, 120, 5, 3], trace.Syscalls);
        Assert.Equal(0, trace.Line);
        Assert.Equal(_dir, trace.Group);
    }

    [Fact]
    public void Jsonl_is_one_trace_per_line_with_optional_metadata()
    {
        string path = Write("set.jsonl",
            "{\"syscalls\": [0, 1, 2], \"label\": \"attack\", \"command\": \"bash -i\", \"tid\": 42}\n\n{\"syscalls\": [3]}\n");
        var traces = TraceReader.Read(path);
        Assert.Equal(2, traces.Count);
        Assert.Equal([0, 1, 2], traces[0].Syscalls);
        Assert.Equal(("attack", "bash -i", 42), (traces[0].Label, traces[0].Command, traces[0].Tid!.Value));
        Assert.Equal(3, traces[1].Line);
        Assert.Null(traces[1].Label);
        Assert.Equal($"{path}:3", traces[1].Name);
    }

    [Fact]
    public void Directories_are_read_recursively_in_order_skipping_hidden_files_and_markdown()
    {
        Write("run-b/2-sh.trace", "1 2");
        Write("run-a/1-cat.trace", "3 4");
        Write("run-a/nested/deeper/x", "5");
        Write("README.md", "# not a trace");
        Write(".cache/junk", "not a trace either");
        Write("run-b/.hidden", "nope");
        var traces = TraceReader.Read(_dir);
        Assert.Equal(["run-a/1-cat.trace", "run-a/nested/deeper/x", "run-b/2-sh.trace"],
            traces.Select(t => Path.GetRelativePath(_dir, t.Source)).ToArray());
    }

    [Theory]
    [InlineData("1 2 3\n4 x5 6\n", 2, "token 2: 'x5' is not a syscall number")]
    [InlineData("1 2\n\n3 -4\n", 3, "token 2: '-4' is not a syscall number")]
    [InlineData("99999999999\n", 1, "'99999999999' is not a syscall number")]
    [InlineData("1.5\n", 1, "'1.5' is not a syscall number")]
    [InlineData("\n  \n", 2, "empty trace")]
    public void Bad_plain_input_names_file_and_line(string text, int line, string problem)
    {
        string path = Write("bad.trace", text);
        var e = Assert.Throws<TraceFormatException>(() => TraceReader.Read(_dir));
        Assert.StartsWith($"{path}:{line}: ", e.Message);
        Assert.Contains(problem, e.Message);
        Assert.Equal((path, line), (e.File, e.LineNumber));
    }

    [Theory]
    [InlineData("{\"syscalls\": [1]}\n{\"syscalls\": [1, 2\n", 2, "invalid JSON")]
    [InlineData("{\"syscalls\": [1]}\n\n{\"label\": \"x\"}\n", 3, "missing \"syscalls\"")]
    [InlineData("{\"syscalls\": [1, \"open\", 3]}\n", 1, "\"syscalls\"[1]: \"open\" is not a syscall number")]
    [InlineData("{\"syscalls\": [1, -1]}\n", 1, "\"syscalls\"[1]: -1 is not a syscall number")]
    [InlineData("{\"syscalls\": []}\n", 1, "\"syscalls\" is empty")]
    [InlineData("[1, 2, 3]\n", 1, "expected a JSON object")]
    [InlineData("{\"syscalls\": [1], \"label\": 7}\n", 1, "\"label\" must be a string")]
    [InlineData("{\"syscalls\": [1], \"tid\": \"x\"}\n", 1, "\"tid\" must be an integer")]
    public void Bad_jsonl_input_names_file_and_line(string text, int line, string problem)
    {
        string path = Write("bad.jsonl", text);
        var e = Assert.Throws<TraceFormatException>(() => TraceReader.Read(path));
        Assert.StartsWith($"{path}:{line}: ", e.Message);
        Assert.Contains(problem, e.Message);
    }

    [Fact]
    public void Gzip_compressed_files_read_like_their_plain_form()
    {
        WriteGzip("run.jsonl.gz", "{\"syscalls\": [1, 2], \"tid\": 7}\n{\"syscalls\": [3]}\n");
        WriteGzip("t.trace.gz", "59 12 9\n");
        var traces = TraceReader.Read(_dir);
        Assert.Equal([[1, 2], [3], [59, 12, 9]], traces.Select(t => t.Syscalls).ToArray());
        Assert.Equal(7, traces[0].Tid);
    }

    [Fact]
    public void A_gz_file_that_is_not_gzip_names_the_file()
    {
        string path = Write("broken.jsonl.gz", "this is not gzip");
        var e = Assert.Throws<TraceFormatException>(() => TraceReader.Read(path));
        Assert.StartsWith($"{path}:1: not valid gzip", e.Message);
    }

    private void WriteGzip(string relative, string text)
    {
        using var gz = new System.IO.Compression.GZipStream(File.Create(Path.Combine(_dir, relative)), System.IO.Compression.CompressionLevel.Fastest);
        gz.Write(System.Text.Encoding.UTF8.GetBytes(text));
    }

    [Fact]
    public void A_missing_path_says_so()
    {
        var e = Assert.Throws<DirectoryNotFoundException>(() => TraceReader.Read(Path.Combine(_dir, "nope")));
        Assert.Contains("no such trace file or directory", e.Message);
    }
}
