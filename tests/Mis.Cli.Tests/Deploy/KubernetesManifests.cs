using System.Collections;
using System.Reflection;
using k8s;
using k8s.Models;

namespace Mis.Cli.Tests.Deploy;

/// <summary>
/// deploy/kubernetes/*.yaml read into the Kubernetes API's typed models (KubernetesClient), strictly:
/// an unknown field, a misspelt one or a value of the wrong type fails the read, as the API server's
/// strict field validation would. What the models do not check (fields the API requires, names the
/// API server would refuse) is checked by <see cref="RequiredFieldErrors"/> and <see cref="NameErrors"/>.
/// </summary>
internal sealed class KubernetesManifests
{
    /// <summary>One object of one file.</summary>
    internal sealed record Manifest(string File, IKubernetesObject<V1ObjectMeta> Object)
    {
        public override string ToString() => $"{File}: {Object.Kind}/{Object.Metadata?.Name}";
    }

    internal static string Directory => Path.Combine(RepoRoot.Find(), "deploy", "kubernetes");

    internal IReadOnlyList<Manifest> All { get; }

    private KubernetesManifests(IReadOnlyList<Manifest> all) => All = all;

    /// <summary>Every document of every *.yaml file of deploy/kubernetes, in file order.</summary>
    internal static KubernetesManifests Load()
    {
        var all = new List<Manifest>();
        foreach (string path in System.IO.Directory.GetFiles(Directory, "*.yaml").Order(StringComparer.Ordinal))
        {
            string file = Path.GetFileName(path);
            List<object> objects;
            try
            {
                objects = KubernetesYaml.LoadAllFromString(File.ReadAllText(path), typeMap: null, strict: true);
            }
            catch (Exception e) when (e is YamlDotNet.Core.YamlException or KeyNotFoundException)
            {
                throw new InvalidDataException($"{file}: not a valid Kubernetes object: {e.Message}", e);
            }
            foreach (var o in objects)
                all.Add(new Manifest(file, o as IKubernetesObject<V1ObjectMeta>
                    ?? throw new InvalidDataException($"{file}: {o?.GetType().Name ?? "an empty document"} is not a Kubernetes object with metadata")));
        }
        return new KubernetesManifests(all);
    }

    internal IEnumerable<(Manifest Manifest, T Object)> OfType<T>() =>
        All.Where(m => m.Object is T).Select(m => (m, (T)m.Object));

    internal T Single<T>(string name) where T : IKubernetesObject<V1ObjectMeta> =>
        OfType<T>().Select(p => p.Object).Single(o => o.Metadata.Name == name);

    /// <summary>The pod templates of the workload objects (DaemonSets and Jobs), with the object that holds each.</summary>
    internal IEnumerable<(Manifest Manifest, V1PodTemplateSpec Template)> PodTemplates() =>
        OfType<V1DaemonSet>().Select(p => (p.Manifest, p.Object.Spec.Template))
            .Concat(OfType<V1Job>().Select(p => (p.Manifest, p.Object.Spec.Template)));

    // The fields the Kubernetes API marks required (its OpenAPI "required" lists) on the types these
    // manifests use, and the image, which the workload controllers require of their containers. (An
    // object's metadata.name is required too, but not a pod template's: NameErrors checks objects'.)
    private static readonly Dictionary<Type, string[]> Required = new()
    {
        [typeof(V1DaemonSetSpec)] = [nameof(V1DaemonSetSpec.Selector), nameof(V1DaemonSetSpec.Template)],
        [typeof(V1JobSpec)] = [nameof(V1JobSpec.Template)],
        [typeof(V1PodSpec)] = [nameof(V1PodSpec.Containers)],
        [typeof(V1Container)] = [nameof(V1Container.Name), nameof(V1Container.Image)],
        [typeof(V1ContainerPort)] = [nameof(V1ContainerPort.ContainerPort)],
        [typeof(V1EnvVar)] = [nameof(V1EnvVar.Name)],
        [typeof(V1Volume)] = [nameof(V1Volume.Name)],
        [typeof(V1VolumeMount)] = [nameof(V1VolumeMount.Name), nameof(V1VolumeMount.MountPath)],
        [typeof(V1HostPathVolumeSource)] = [nameof(V1HostPathVolumeSource.Path)],
        [typeof(V1PersistentVolumeClaimVolumeSource)] = [nameof(V1PersistentVolumeClaimVolumeSource.ClaimName)],
        [typeof(V1HTTPGetAction)] = [nameof(V1HTTPGetAction.Port)],
        [typeof(V1TCPSocketAction)] = [nameof(V1TCPSocketAction.Port)],
        [typeof(V1KeyToPath)] = [nameof(V1KeyToPath.Key), nameof(V1KeyToPath.Path)],
        [typeof(V1Toleration)] = [],
        [typeof(V1SeccompProfile)] = [nameof(V1SeccompProfile.Type)],
    };

    /// <summary>Every required field left empty, as "file: Kind/name: Type.Field".</summary>
    internal IEnumerable<string> RequiredFieldErrors()
    {
        foreach (var manifest in All)
            foreach (var error in Walk(manifest.Object, $"{manifest}"))
                yield return error;
    }

    private static IEnumerable<string> Walk(object node, string where)
    {
        var type = node.GetType();
        if (Required.TryGetValue(type, out var fields))
            foreach (string field in fields)
                if (type.GetProperty(field)!.GetValue(node) is null or "" or ICollection { Count: 0 })
                    yield return $"{where}: {type.Name}.{field} is required";
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (property.GetIndexParameters().Length > 0 || property.GetValue(node) is not { } value)
                continue;
            IEnumerable children = value switch
            {
                string => Array.Empty<object>(),
                IDictionary dictionary => dictionary.Values,
                IEnumerable list => list,
                _ => new[] { value },
            };
            foreach (var child in children)
                if (child is not null && child.GetType().Namespace == "k8s.Models")
                    foreach (var error in Walk(child, where))
                        yield return error;
        }
    }

    /// <summary>Names the API server would refuse (object names: DNS-1123 subdomains; containers, volumes: DNS-1123 labels; ports: IANA service names).</summary>
    internal IEnumerable<string> NameErrors()
    {
        foreach (var m in All)
            if (!IsDnsSubdomain(m.Object.Metadata.Name))
                yield return $"{m}: metadata.name is not a DNS-1123 subdomain";
        foreach (var (m, template) in PodTemplates())
        {
            foreach (var c in template.Spec.Containers)
            {
                if (!IsDnsLabel(c.Name))
                    yield return $"{m}: container name {c.Name} is not a DNS-1123 label";
                foreach (var port in c.Ports ?? [])
                    if (port.Name is { } name && (name.Length > 15 || !IsDnsLabel(name) || !name.Any(char.IsLetter)))
                        yield return $"{m}: port name {name} is not an IANA service name (at most 15 characters, a letter, [a-z0-9-])";
            }
            foreach (var v in template.Spec.Volumes ?? [])
                if (!IsDnsLabel(v.Name))
                    yield return $"{m}: volume name {v.Name} is not a DNS-1123 label";
            if (template.Spec.Containers.Select(c => c.Name).Distinct().Count() != template.Spec.Containers.Count)
                yield return $"{m}: two containers share a name";
            if ((template.Spec.Volumes ?? []).Select(v => v.Name).Distinct().Count() != (template.Spec.Volumes?.Count ?? 0))
                yield return $"{m}: two volumes share a name";
        }
    }

    private static bool IsDnsLabel(string name) =>
        name.Length is > 0 and <= 63 && System.Text.RegularExpressions.Regex.IsMatch(name, "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$");

    private static bool IsDnsSubdomain(string name) =>
        name.Length is > 0 and <= 253 && name.Split('.').All(IsDnsLabel);
}
