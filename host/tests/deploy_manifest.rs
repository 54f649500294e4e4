//! `deploy/kubernetes.yaml` against the real service: every probe path and the Prometheus
//! scrape path is one the service answers (started in-process with the ConfigMap's own
//! configuration), every port is the one the configuration listens on, the token file lies in
//! the mounted Secret, the grace period covers the preStop sleep, the drain and the jobs' last
//! checkpoints, and the jobs directory is one `ReadWriteMany` claim mounted where `[jobs] dir`
//! says.
//!
//! The schema check of the same file (`kubernetes-validate`) and `rustkernel config check` of
//! its ConfigMap are in `scripts/k8s-check.sh`.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // a test fails loudly

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustkernel_host::config::{AuthMode, ConfigFile, ServiceConfig};
use rustkernel_host::service::health::ProbeBody;
use serde::Deserialize;
use serde_norway::Value;

const MANIFEST: &str = include_str!("../../deploy/kubernetes.yaml");
const CONFIG_KEY: &str = "rustkernel.toml";

/// Every document of the manifest.
fn documents() -> Vec<Value> {
    serde_norway::Deserializer::from_str(MANIFEST)
        .map(|document| Value::deserialize(document).unwrap())
        .filter(|document| !document.is_null())
        .collect()
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
    file.resolve(None).unwrap()
}

#[test]
fn the_token_file_is_the_mounted_secret_and_tokens_are_required() {
    let documents = documents();
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
        .unwrap_or_else(|| panic!("no volume is mounted above {}", token_file.display()));
    assert_eq!(mount["readOnly"].as_bool(), Some(true), "read-only mount");
    let relative = token_file
        .strip_prefix(text(&mount["mountPath"], "mountPath"))
        .unwrap();
    let volume_name = text(&mount["name"], "volume name");
    let volume = deployment["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|volume| volume["name"].as_str() == Some(volume_name))
        .unwrap();
    let secret = &volume["secret"];
    assert!(secret.is_mapping(), "{volume_name} must be a Secret volume");
    let mode = number(&secret["defaultMode"], "defaultMode");
    assert_eq!(
        mode & 0o077,
        0,
        "defaultMode {mode:o} opens the tokens to others"
    );
    let items = secret["items"].as_sequence().unwrap();
    assert!(
        items
            .iter()
            .any(|item| Path::new(text(&item["path"], "item path")) == relative),
        "the Secret volume has no item at {}",
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

#[test]
fn termination_grace_covers_the_pre_stop_sleep_and_the_drain() {
    let documents = documents();
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
    // In-flight requests get the drain timeout, then running jobs get it again to write their
    // last checkpoint.
    let drains = if config.jobs.is_some() { 2 } else { 1 };
    let needed =
        Duration::from_secs(pre_stop) + config.drain_timeout * drains + Duration::from_secs(5);
    assert!(
        Duration::from_secs(grace) >= needed,
        "terminationGracePeriodSeconds {grace} < preStop {pre_stop} s + {drains} x drain {:?} + 5 s",
        config.drain_timeout
    );
}

#[test]
fn the_jobs_directory_is_one_read_write_many_claim_mounted_writable() {
    let documents = documents();
    let deployment = of_kind(&documents, "Deployment");
    let container = container(deployment);
    let jobs_dir = config_file(&documents).jobs.dir.expect("[jobs] dir is set");
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|mount| Path::new(text(&mount["mountPath"], "mountPath")) == jobs_dir)
        .unwrap_or_else(|| panic!("nothing is mounted at {}", jobs_dir.display()));
    assert_ne!(
        mount["readOnly"].as_bool(),
        Some(true),
        "the jobs are written"
    );
    let volume_name = text(&mount["name"], "volume name");
    let volume = deployment["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|volume| volume["name"].as_str() == Some(volume_name))
        .unwrap();
    let claim_name = text(
        &volume["persistentVolumeClaim"]["claimName"],
        "the jobs volume's claim",
    );
    let claim = of_kind(&documents, "PersistentVolumeClaim");
    assert_eq!(text(&claim["metadata"]["name"], "claim name"), claim_name);
    let modes = claim["spec"]["accessModes"].as_sequence().unwrap();
    assert_eq!(
        modes,
        &vec![Value::from("ReadWriteMany")],
        "every replica mounts it read-write"
    );
    assert!(
        number(&deployment["spec"]["replicas"], "replicas") > 1,
        "replicas share the jobs"
    );
}

#[test]
fn the_pod_runs_locked_down() {
    let documents = documents();
    let deployment = of_kind(&documents, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"]["securityContext"];
    let container = container(deployment);
    let security = &container["securityContext"];
    assert_eq!(pod["runAsNonRoot"].as_bool(), Some(true));
    assert!(number(&pod["runAsUser"], "runAsUser") > 0);
    assert_eq!(
        text(&pod["seccompProfile"]["type"], "seccomp"),
        "RuntimeDefault"
    );
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(
        security["capabilities"]["drop"].as_sequence().unwrap(),
        &vec![Value::from("ALL")]
    );
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][bound][resource].as_str().is_some(),
                "resources.{bound}.{resource}"
            );
        }
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
    let documents = documents();
    let deployment = of_kind(&documents, "Deployment");
    let container = container(deployment);
    let dir = tempfile::tempdir().unwrap();
    let config = resolved(config_file(&documents), dir.path());
    let port = u64::from(config.address.port());

    // The container, the Service and the scrape annotation use the configured port.
    assert!(
        container["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|p| p["containerPort"].as_u64() == Some(port)),
        "no containerPort {port}"
    );
    let service = of_kind(&documents, "Service");
    for service_port in service["spec"]["ports"].as_sequence().unwrap() {
        assert_eq!(
            resolve_port(container, &service_port["targetPort"]),
            port,
            "Service targetPort"
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
    // Startup finishes when every component answered its first check (microseconds here);
    // the bound only keeps a broken service from hanging the test.
    tokio::time::timeout(Duration::from_secs(30), async {
        while !running.is_started() {
            tokio::task::yield_now().await;
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
        assert_eq!(resolve_port(container, &probe["port"]), port, "{name} port");
        let (status, body) = get(&client, &base, path).await;
        assert!(
            status == 200 || status == 503,
            "{name} GET {path}: {status} {body}"
        );
        let answer: ProbeBody = serde_json::from_str(&body).unwrap_or_else(|error| {
            panic!("{name} GET {path}: not a probe answer: {error}: {body}")
        });
        if name == "startupProbe" {
            assert_eq!((status, answer.status.as_str()), (200, "started"));
        }
        probed.push(path.to_owned());
    }
    probed.sort();
    assert_eq!(probed, ["/health/live", "/health/ready", "/health/startup"]);

    let (status, body) = get(&client, &base, scrape_path).await;
    assert_eq!(status, 200, "GET {scrape_path}: {body}");
    assert!(
        body.trim_end().ends_with("# EOF"),
        "not OpenMetrics: {body}"
    );

    running.shutdown().await.unwrap();
}
