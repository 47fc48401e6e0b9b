using System.Text;
using System.Text.RegularExpressions;

namespace Mis.Enforcer.Policy;

/// <summary>
/// A path pattern of a file rule. <c>*</c> matches within one path segment, <c>**</c> any number of
/// segments (including none; a final <c>/**</c> also matches the directory it follows), <c>?</c> one character other than '/', <c>[abc]</c> a character class.
/// A pattern without those is a concrete path and also matches by inode (see <see cref="WorkloadPolicy"/>).
/// Patterns are absolute: the supervisor hands the policy the canonical path the kernel opened.
/// </summary>
public sealed class PathGlob
{
    private readonly Regex _regex;

    private PathGlob(string pattern, Regex regex)
    {
        Pattern = pattern;
        _regex = regex;
    }

    /// <summary>The pattern as written.</summary>
    internal string Pattern { get; }

    /// <summary>True when the pattern has no wildcard: it names one file.</summary>
    internal bool IsConcrete => Pattern.IndexOfAny(['*', '?', '[']) < 0;

    internal bool Matches(string path) => _regex.IsMatch(path);

    /// <summary>Compiles <paramref name="pattern"/>; the error message says what is wrong with it.</summary>
    internal static bool TryParse(string pattern, out PathGlob? glob, out string error)
    {
        glob = null;
        if (!pattern.StartsWith('/'))
        {
            error = $"a path pattern must be absolute (start with '/'), found \"{pattern}\"";
            return false;
        }
        var regex = new StringBuilder("^");
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            switch (c)
            {
                case '/' when pattern.AsSpan(i) is "/**":
                    // "dir/**" covers the directory itself too: a rule on a tree protects its root
                    // (listing it, O_TMPFILE in it, renaming or removing it).
                    regex.Append("(?:/.*)?");
                    i += 2;
                    break;
                case '*' when i + 1 < pattern.Length && pattern[i + 1] == '*':
                    // "/**/" also matches "/", so "/a/**/b" matches "/a/b".
                    bool slashAfter = i + 2 < pattern.Length && pattern[i + 2] == '/';
                    regex.Append(slashAfter ? "(?:.*/)?" : ".*");
                    i += slashAfter ? 2 : 1;
                    break;
                case '*':
                    regex.Append("[^/]*");
                    break;
                case '?':
                    regex.Append("[^/]");
                    break;
                case '[':
                    int close = pattern.IndexOf(']', i + 1);
                    if (close < 0)
                    {
                        error = $"unclosed '[' at character {i + 1} of \"{pattern}\"";
                        return false;
                    }
                    string set = pattern[(i + 1)..close];
                    regex.Append('[').Append(set.StartsWith('!') ? "^" + Regex.Escape(set[1..]) : Regex.Escape(set)).Append(']');
                    i = close;
                    break;
                default:
                    regex.Append(Regex.Escape(c.ToString()));
                    break;
            }
        }
        // \z, not $ (which also matches before a final newline), and Singleline so that ** and
        // /** cross newlines too: a file named "x\n" under a denied tree is under that tree.
        regex.Append("\\z");
        glob = new PathGlob(pattern, new Regex(regex.ToString(), RegexOptions.CultureInvariant | RegexOptions.Singleline | RegexOptions.Compiled));
        error = "";
        return true;
    }

    /// <inheritdoc />
    public override string ToString() => Pattern;
}
