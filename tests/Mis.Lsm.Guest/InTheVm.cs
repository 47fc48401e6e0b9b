namespace Mis.Lsm.Guest;

/// <summary>
/// The guest tests' guard: they are meant for the kernel the LSM VM boots, where BPF LSM programs
/// load. Run anywhere else they would fail with the host kernel's EPERM, which reads like a broken
/// probe; this says instead where they belong.
/// </summary>
internal static class InTheVm
{
    /// <summary>Set by the VM's run script (tests/Mis.Lsm.Tests, LsmVm).</summary>
    internal const string Variable = "MIS_LSM_VM";

    internal static void Require()
    {
        if (Environment.GetEnvironmentVariable(Variable) != "1")
            Assert.Fail($"this test runs only inside the BPF LSM VM ({Variable}=1 is not set): run it through tests/Mis.Lsm.Tests (`./mis test --filter Lsm`)");
        Assert.True(Environment.IsPrivilegedProcess, "the VM runs its command as root, but this process is not root");
    }
}
