using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace Mis.Cli.Tests;

/// <summary>
/// Every P/Invoke and every errno or signal number lives in Mis.Native: a second declaration of
/// <c>kill</c> or a private <c>EINTR = 4</c> elsewhere is how copies start to disagree. Read from
/// the compiled assemblies, so the methods LibraryImport generates count too.
/// </summary>
public sealed partial class NativeBoundaryTests
{
    // Every assembly built from src/ that `mis` loads, Mis.Native itself excluded.
    private static readonly string[] Assemblies = ["Mis.Enforcer", "Mis.Anomaly", "Mis.Gym", "Mis.Server", "mis"];
    private const BindingFlags Everything = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly;

    [Fact]
    public void No_assembly_but_Mis_Native_declares_a_P_Invoke()
    {
        var found = Types()
            .SelectMany(t => t.GetMethods(Everything).Where(m => (m.Attributes & MethodAttributes.PinvokeImpl) != 0 || m.IsDefined(typeof(DllImportAttribute)))
                .Select(m => $"{t.Assembly.GetName().Name}: {t.FullName}.{m.Name}"))
            .ToList();
        Assert.True(found.Count == 0, "P/Invokes outside Mis.Native:\n" + string.Join('\n', found));
    }

    [Fact]
    public void No_assembly_but_Mis_Native_declares_an_errno_or_signal_number()
    {
        var found = Types()
            .SelectMany(t => t.GetFields(Everything).Where(f => f.IsLiteral && f.FieldType == typeof(int) && ErrnoOrSignal().IsMatch(f.Name))
                .Select(f => $"{t.Assembly.GetName().Name}: {t.FullName}.{f.Name}"))
            .ToList();
        Assert.True(found.Count == 0, "errno or signal constants outside Mis.Native (use Mis.Native.Errno / Signals):\n" + string.Join('\n', found));
    }

    [Fact]
    public void The_check_sees_what_it_looks_for()
    {
        // Guards the two tests above against passing vacuously (a renamed assembly, a type not loading).
        var native = typeof(Mis.Native.Errno).Assembly.GetTypes();
        Assert.Contains(native.SelectMany(t => t.GetMethods(Everything)), m => (m.Attributes & MethodAttributes.PinvokeImpl) != 0);
        Assert.Contains(native.SelectMany(t => t.GetFields(Everything)), f => f.IsLiteral && ErrnoOrSignal().IsMatch(f.Name));
        Assert.All(Assemblies, name => Assert.NotEmpty(Assembly.Load(name).GetTypes()));
    }

    private static IEnumerable<Type> Types() => Assemblies.SelectMany(name => Assembly.Load(name).GetTypes());

    [GeneratedRegex("^(E[A-Z0-9]+|SIG[A-Z0-9]+)$")]
    private static partial Regex ErrnoOrSignal();
}
