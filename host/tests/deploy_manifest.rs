//! `deploy/kubernetes.yaml` (CPU nodes) and `deploy/kubernetes-gpu.yaml` (GPU nodes) against
//! the real service. For each Deployment: every probe path and the Prometheus scrape path is
//! one the service answers (started in-process with the Deployment's own ConfigMap), every port
//! is the one the configuration listens on, the token file lies in the mounted Secret, the
//! grace period covers the preStop sleep, the drain and the jobs' last checkpoints, the jobs
//! directory is the one `ReadWriteMany` claim mounted where `[jobs] dir` says, and the pod runs
//! locked down. The GPU Deployment asks for a GPU, the NVIDIA runtime class and GPU nodes, and
//! rolls out without a surge pod; the Service and the budget select both Deployments' pods,
//! each Deployment only its own.
//!
//! The schema check of the same files (`kubernetes-validate`), `rustkernel config check` of
//! their ConfigMaps and the image names against `scripts/build-image.sh --tags` are in
//! `scripts/k8s-check.sh`.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // a test fails loudly

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustkernel_host::config::{AuthMode, ConfigFile, ServiceConfig};
use rustkernel_host::service::health::ProbeBody;
use serde::Deserialize;
use serde_norway::Value;

/// The manifest with the Secret's instructions, the claim, the Service and the budget.
const MANIFEST: &str = include_str!("../../deploy/kubernetes.yaml");
/// The GPU variant: a ConfigMap and a Deployment that use the ones above.
const GPU_MANIFEST: &str = include_str!("../../deploy/kubernetes-gpu.yaml");
const CONFIG_KEY: &str = "rustkernel.toml";

/// Every document of a manifest.
fn parse(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).unwrap())
        .filter(|document| !document.is_null())
        .collect()
}

/// Every document of `deploy/kubernetes.yaml`.
fn documents() -> Vec<Value> {
    parse(MANIFEST)
}

/// Each manifest with a Deployment, by file name: its documents (a ConfigMap, the Deployment
/// that mounts it, and what else it has).
fn variants() -> [(&'static str, Vec<Value>); 2] {
    [
        ("kubernetes.yaml", documents()),
        ("kubernetes-gpu.yaml", parse(GPU_MANIFEST)),
    ]
}

fn of_kind<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = documents
        .iter()
        .filter(|document| document["kind"].as_str() == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} in the manifest");
    found[0]
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value:?}"))
}

fn number(value: &Value, what: &str) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{what} is not a number: {value:?}"))
}

/// The Deployment's one container.
fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap();
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

/// A probe's or Service's port: a number, or the name of one of the container's ports.
fn resolve_port(container: &Value, port: &Value) -> u64 {
    if let Some(number) = port.as_u64() {
        return number;
    }
    let name = text(port, "port");
    let ports = container["ports"].as_sequence().unwrap();
    let found = ports
        .iter()
        .find(|candidate| candidate["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no container port named {name:?}"));
    number(&found["containerPort"], "containerPort")
}

/// The ConfigMap's configuration file, parsed.
fn config_file(documents: &[Value]) -> ConfigFile {
    let config_map = of_kind(documents, "ConfigMap");
    ConfigFile::parse(text(&config_map["data"][CONFIG_KEY], CONFIG_KEY)).unwrap()
}

/// The configuration resolved as the pod would, with its token file replaced by a temporary
/// one of mode 0440 (the mode the kubelet gives the Secret's file when the pod has an
/// fsGroup).
fn resolved(mut file: ConfigFile, dir: &Path) -> ServiceConfig {
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, "deploy-manifest-test-token-0123456789\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o440)).unwrap();
    }
    file.auth.token_file = Some(tokens);
    // The claim's mount point does not exist here: the jobs go to the temporary directory.
    if file.jobs.dir.is_some() {
        file.jobs.dir = Some(dir.join("jobs"));
    }
    // Nor does the image's worker: this build's stands in (without a GPU it reports the GPU
    // unavailable, and the service serves from the CPU, as on a GPU node whose GPU failed).
    if file.gpu.worker.is_some() {
        file.gpu.worker = Some(PathBuf::from(env!("CARGO_BIN_EXE_rustkernel-worker")));
    }
    file.resolve(None).unwrap()
}

/// The volume of the pod named `name`.
fn volume<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|volume| volume["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no volume named {name:?}"))
}

#[test]
fn the_token_file_is_the_mounted_secret_and_tokens_are_required() {
    for (file_name, documents) in variants() {
        let deployment = of_kind(&documents, "Deployment");
        let container = container(deployment);
        let file = config_file(&documents);
        let token_file: PathBuf = file
            .auth
            .token_file
            .clone()
            .expect("auth.token_file is set");

        // The mount that holds the token file, and its volume.
        let mount = container["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|mount| token_file.starts_with(text(&mount["mountPath"], "mountPath")))
            .unwrap_or_else(|| {
                panic!(
                    "{file_name}: no volume is mounted above {}",
                    token_file.display()
                )
            });
        assert_eq!(mount["readOnly"].as_bool(), Some(true), "read-only mount");
        let relative = token_file
            .strip_prefix(text(&mount["mountPath"], "mountPath"))
            .unwrap();
        let volume_name = text(&mount["name"], "volume name");
        let secret = &volume(deployment, volume_name)["secret"];
        assert!(
            secret.is_mapping(),
            "{file_name}: {volume_name} must be a Secret volume"
        );
        let mode = number(&secret["defaultMode"], "defaultMode");
        assert_eq!(
            mode & 0o077,
            0,
            "{file_name}: defaultMode {mode:o} opens the tokens to others"
        );
        let items = secret["items"].as_sequence().unwrap();
        assert!(
            items
                .iter()
                .any(|item| Path::new(text(&item["path"], "item path")) == relative),
            "{file_name}: the Secret volume has no item at {}",
            relative.display()
        );

        // Non-loopback address: tokens must be on.
        let dir = tempfile::tempdir().unwrap();
        let config = resolved(file, dir.path());
        assert!(!config.is_loopback());
        assert_eq!(config.auth.mode, AuthMode::Token);
        assert!(!config.auth.protect_health, "the kubelet sends no token");
        assert!(!config.auth.protect_metrics, "Prometheus sends no token");
    }
}

#[test]
fn termination_grace_covers_the_pre_stop_sleep_and_the_drain() {
    for (file_name, documents) in variants() {
        let deployment = of_kind(&documents, "Deployment");
        let dir = tempfile::tempdir().unwrap();
        let config = resolved(config_file(&documents), dir.path());
        let grace = number(
            &deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
            "terminationGracePeriodSeconds",
        );
        let pre_stop = number(
            &container(deployment)["lifecycle"]["preStop"]["sleep"]["seconds"],
            "preStop sleep",
        );
        // In-flight requests get the drain timeout, then running jobs get it again to write
        // their last checkpoint.
        let drains = if config.jobs.is_some() { 2 } else { 1 };
        let needed =
            Duration::from_secs(pre_stop) + config.drain_timeout * drains + Duration::from_secs(5);
        assert!(
            Duration::from_secs(grace) >= needed,
            "{file_name}: terminationGracePeriodSeconds {grace} < preStop {pre_stop} s + {drains} x drain {:?} + 5 s",
            config.drain_timeout
        );
    }
}

#[test]
fn the_jobs_directory_is_one_read_write_many_claim_mounted_writable() {
    // The claim is in kubernetes.yaml; every Deployment mounts it.
    let shared = documents();
    let claim = of_kind(&shared, "PersistentVolumeClaim");
    let modes = claim["spec"]["accessModes"].as_sequence().unwrap();
    assert_eq!(
        modes,
        &vec![Value::from("ReadWriteMany")],
        "every replica mounts it read-write"
    );
    for (file_name, documents) in variants() {
        let deployment = of_kind(&documents, "Deployment");
        let container = container(deployment);
        let jobs_dir = config_file(&documents).jobs.dir.expect("[jobs] dir is set");
        let mount = container["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|mount| Path::new(text(&mount["mountPath"], "mountPath")) == jobs_dir)
            .unwrap_or_else(|| panic!("{file_name}: nothing is mounted at {}", jobs_dir.display()));
        assert_ne!(
            mount["readOnly"].as_bool(),
            Some(true),
            "{file_name}: the jobs are written"
        );
        let volume_name = text(&mount["name"], "volume name");
        let claim_name = text(
            &volume(deployment, volume_name)["persistentVolumeClaim"]["claimName"],
            "the jobs volume's claim",
        );
        assert_eq!(
            text(&claim["metadata"]["name"], "claim name"),
            claim_name,
            "{file_name}: the jobs are on the shared claim"
        );
        assert!(
            number(&deployment["spec"]["replicas"], "replicas") > 1,
            "{file_name}: replicas share the jobs"
        );
    }
}

#[test]
fn the_pod_runs_locked_down() {
    for (file_name, documents) in variants() {
        let deployment = of_kind(&documents, "Deployment");
        let pod = &deployment["spec"]["template"]["spec"]["securityContext"];
        let container = container(deployment);
        let security = &container["securityContext"];
        assert_eq!(pod["runAsNonRoot"].as_bool(), Some(true), "{file_name}");
        // The image's USER (deploy/Containerfile): the one whose files are the jobs directory.
        assert_eq!(number(&pod["runAsUser"], "runAsUser"), 10001, "{file_name}");
        assert_eq!(
            text(&pod["seccompProfile"]["type"], "seccomp"),
            "RuntimeDefault"
        );
        assert_eq!(
            security["readOnlyRootFilesystem"].as_bool(),
            Some(true),
            "{file_name}"
        );
        assert_eq!(
            security["allowPrivilegeEscalation"].as_bool(),
            Some(false),
            "{file_name}"
        );
        assert_eq!(
            security["capabilities"]["drop"].as_sequence().unwrap(),
            &vec![Value::from("ALL")]
        );
        for bound in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    container["resources"][bound][resource].as_str().is_some(),
                    "{file_name}: resources.{bound}.{resource}"
                );
            }
        }
        // /tmp is the one writable place of the root file system's tree but the jobs.
        let tmp = container["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|mount| mount["mountPath"].as_str() == Some("/tmp"))
            .unwrap_or_else(|| panic!("{file_name}: no volume at /tmp"));
        assert!(
            volume(deployment, text(&tmp["name"], "volume name"))["emptyDir"].is_mapping(),
            "{file_name}: /tmp is an emptyDir"
        );
    }
}

/// Whether every label of `selector` is among `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_mapping()
        .unwrap()
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

#[test]
fn the_service_and_the_budget_select_both_deployments_pods_and_each_deployment_its_own() {
    let shared = documents();
    let variants = variants();
    let pod_labels: Vec<&Value> =
        variants
            .iter()
            .map(|(_, documents)| {
                &of_kind(documents, "Deployment")["spec"]["template"]["metadata"]["labels"]
            })
            .collect();
    for (index, (file_name, documents)) in variants.iter().enumerate() {
        let selector = &of_kind(documents, "Deployment")["spec"]["selector"]["matchLabels"];
        for (other, labels) in pod_labels.iter().enumerate() {
            assert_eq!(
                selects(selector, labels),
                index == other,
                "{file_name}: its Deployment's selector and the pods of Deployment {other}"
            );
        }
    }
    let service = &of_kind(&shared, "Service")["spec"]["selector"];
    let budget = &of_kind(&shared, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"];
    for labels in pod_labels {
        assert!(selects(service, labels), "the Service selects {labels:?}");
        assert!(selects(budget, labels), "the budget selects {labels:?}");
    }
}

#[test]
fn images_are_this_version_and_the_gpu_variant_asks_for_a_gpu_node() {
    // scripts/k8s-check.sh compares the whole names with scripts/build-image.sh --tags.
    let version = env!("CARGO_PKG_VERSION");
    for (file_name, documents) in variants() {
        let deployment = of_kind(&documents, "Deployment");
        let image = text(&container(deployment)["image"], "image");
        let gpu = config_file(&documents).gpu;
        let pod = &deployment["spec"]["template"]["spec"];
        let limits = &container(deployment)["resources"]["limits"];
        if gpu.enabled != Some(true) {
            assert!(
                image.ends_with(&format!(":{version}")),
                "{file_name}: {image}"
            );
            assert!(limits.get("nvidia.com/gpu").is_none(), "{file_name}");
            continue;
        }
        assert!(
            image.ends_with(&format!(":{version}-gpu")),
            "{file_name}: {image}"
        );
        // The CUDA worker of the image (deploy/Containerfile.gpu).
        assert_eq!(
            gpu.worker.as_deref(),
            Some(Path::new("/usr/local/bin/rustkernel-worker")),
            "{file_name}"
        );
        assert_eq!(
            gpu.backend,
            Some(rustkernel_host::config::GpuBackend::Cuda),
            "{file_name}"
        );
        assert_eq!(number(&limits["nvidia.com/gpu"], "nvidia.com/gpu"), 1);
        assert_eq!(text(&pod["runtimeClassName"], "runtimeClassName"), "nvidia");
        assert_eq!(
            text(
                &pod["nodeSelector"]["nvidia.com/gpu.present"],
                "node selector"
            ),
            "true"
        );
        // A surge pod would need one more GPU than the replicas hold.
        let rolling = &deployment["spec"]["strategy"]["rollingUpdate"];
        assert_eq!(number(&rolling["maxSurge"], "maxSurge"), 0, "{file_name}");
        assert!(number(&rolling["maxUnavailable"], "maxUnavailable") >= 1);
    }
}

/// GETs `path` and returns the status and body.
async fn get(client: &reqwest::Client, base: &str, path: &str) -> (u16, String) {
    let response = client.get(format!("{base}{path}")).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_probe_and_the_scrape_path_are_served_on_the_configured_port() {
    let shared = documents();
    for (file_name, documents) in variants() {
        probes_and_scrape_path_are_served(file_name, &documents, &shared).await;
    }
}

async fn probes_and_scrape_path_are_served(file_name: &str, documents: &[Value], shared: &[Value]) {
    let deployment = of_kind(documents, "Deployment");
    let container = container(deployment);
    let dir = tempfile::tempdir().unwrap();
    let config = resolved(config_file(documents), dir.path());
    let port = u64::from(config.address.port());

    // The container, the Service and the scrape annotation use the configured port.
    assert!(
        container["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|p| p["containerPort"].as_u64() == Some(port)),
        "{file_name}: no containerPort {port}"
    );
    let service = of_kind(shared, "Service");
    for service_port in service["spec"]["ports"].as_sequence().unwrap() {
        assert_eq!(
            resolve_port(container, &service_port["targetPort"]),
            port,
            "{file_name}: Service targetPort"
        );
    }
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(text(&annotations["prometheus.io/scrape"], "scrape"), "true");
    assert_eq!(
        text(&annotations["prometheus.io/port"], "scrape port"),
        port.to_string()
    );
    let scrape_path = text(&annotations["prometheus.io/path"], "scrape path");

    // The real service, with the ConfigMap's configuration, on a loopback port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = rustkernel_host::service::start_on(config, listener)
        .await
        .unwrap();
    let base = format!("http://{}", running.local_addr());
    let client = reqwest::Client::new();
    // Startup finishes when every component answered its first check (microseconds here; with
    // [gpu], when the worker reported the GPU unavailable); the bound only keeps a broken
    // service from hanging the test.
    tokio::time::timeout(Duration::from_secs(30), async {
        while !running.is_started() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("startup finished");

    // A path the service does not serve is 404: the checks below can fail.
    assert_eq!(get(&client, &base, "/healthz").await.0, 404);

    let mut probed = Vec::new();
    for name in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let probe = &container[name]["httpGet"];
        let path = text(&probe["path"], "probe path");
        assert_eq!(
            resolve_port(container, &probe["port"]),
            port,
            "{file_name}: {name} port"
        );
        let (status, body) = get(&client, &base, path).await;
        assert!(
            status == 200 || status == 503,
            "{file_name}: {name} GET {path}: {status} {body}"
        );
        let answer: ProbeBody = serde_json::from_str(&body).unwrap_or_else(|error| {
            panic!("{file_name}: {name} GET {path}: not a probe answer: {error}: {body}")
        });
        if name == "startupProbe" {
            assert_eq!((status, answer.status.as_str()), (200, "started"));
        }
        probed.push(path.to_owned());
    }
    probed.sort();
    assert_eq!(probed, ["/health/live", "/health/ready", "/health/startup"]);

    let (status, body) = get(&client, &base, scrape_path).await;
    assert_eq!(status, 200, "{file_name}: GET {scrape_path}: {body}");
    assert!(
        body.trim_end().ends_with("# EOF"),
        "not OpenMetrics: {body}"
    );

    running.shutdown().await.unwrap();
}
