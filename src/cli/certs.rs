//! `tierguard certs`: development certificates and a kustomization that
//! deploys tierguard with them (the path without cert-manager).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use base64::Engine;
use clap::Args;

use crate::certs::Ca;
use crate::engine::names;

/// Arguments of `certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Where to write ca.crt, ca.key, tls.crt, tls.key and kustomization.yaml.
    #[arg(long, default_value = "certs")]
    pub out: PathBuf,
    /// The namespace tierguard runs in (the certificate names tierguard.<namespace>.svc).
    #[arg(long, default_value = "tierguard")]
    pub namespace: String,
    /// The kustomize base to deploy (default: deploy/base of the repository, from the current directory).
    #[arg(long, default_value = "deploy/base")]
    pub base: PathBuf,
    /// More names for the serving certificate (DNS names or IP addresses), e.g. 127.0.0.1 for a local run.
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Expiry of the serving certificate, YYYY-MM-DD.
    #[arg(long, default_value = "2030-01-01")]
    pub not_after: String,
}

/// The webhooks of deploy/base/webhooks.yaml, in order, per configuration.
const MUTATING: usize = 1;
const VALIDATING: usize = 6;

fn ymd(s: &str) -> Result<(i32, u8, u8)> {
    let parts: Vec<&str> = s.split('-').collect();
    if let [y, m, d] = parts[..] {
        let (y, m, d) = (y.parse::<i32>(), m.parse::<u8>(), d.parse::<u8>());
        if let (Ok(y), Ok(m @ 1..=12), Ok(d @ 1..=31)) = (y, m, d) {
            return Ok((y, m, d));
        }
    }
    bail!("--not-after {s:?}: expected YYYY-MM-DD")
}

fn ca_patch(kind: &str, count: usize, bundle: &str) -> String {
    let ops: Vec<String> = (0..count)
        .map(|i| {
            format!("    - {{op: add, path: /webhooks/{i}/clientConfig/caBundle, value: {bundle}}}")
        })
        .collect();
    format!(
        "- target: {{kind: {kind}, name: tierguard}}\n  patch: |-\n{}\n",
        ops.join("\n")
    )
}

/// `to` relative to `from` (kustomize wants relative resource paths).
fn relative(from: &std::path::Path, to: &std::path::Path) -> Result<String> {
    let from = from
        .canonicalize()
        .with_context(|| format!("{}: cannot resolve", from.display()))?;
    let to = to
        .canonicalize()
        .with_context(|| format!("{}: cannot resolve", to.display()))?;
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let ups = from.components().count() - common;
    let mut parts: Vec<String> = vec!["..".to_string(); ups];
    parts.extend(
        to.components()
            .skip(common)
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    Ok(if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    })
}

/// Writes the files.
pub fn run(args: CertsArgs) -> Result<ExitCode> {
    let msgs = names::dns1123_label(&args.namespace);
    if !msgs.is_empty() {
        bail!("--namespace {:?}: {}", args.namespace, msgs.join("; "));
    }
    let not_after = ymd(&args.not_after)?;
    let ca = Ca::new("tierguard development CA")?;
    let svc = format!("tierguard.{}.svc", args.namespace);
    let mut names = vec![svc.clone(), format!("{svc}.cluster.local")];
    names.extend(args.hosts.iter().cloned());
    let pair = ca.issue(&names, not_after)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create", args.out.display()))?;
    let write = |name: &str, text: &str| -> Result<()> {
        let p = args.out.join(name);
        std::fs::write(&p, text).with_context(|| format!("{}: cannot write", p.display()))
    };
    write("ca.crt", &ca.cert_pem())?;
    write("ca.key", &ca.key_pem())?;
    write("tls.crt", &pair.cert_pem)?;
    write("tls.key", &pair.key_pem)?;
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca.cert_pem());
    let base = relative(&args.out, &args.base)?;
    let kustomization = format!(
        "# Written by `tierguard certs`: deploys {base} with the certificates here.\n\
         # kubectl apply -k {out}\n\
         apiVersion: kustomize.config.k8s.io/v1beta1\n\
         kind: Kustomization\n\
         resources:\n- {base}\n\
         secretGenerator:\n- name: tierguard-tls\n  namespace: {ns}\n  type: kubernetes.io/tls\n  files: [tls.crt, tls.key]\n  options: {{disableNameSuffixHash: true}}\n\
         patches:\n{m}{v}",
        base = base,
        out = args.out.display(),
        ns = args.namespace,
        m = ca_patch("MutatingWebhookConfiguration", MUTATING, &bundle),
        v = ca_patch("ValidatingWebhookConfiguration", VALIDATING, &bundle),
    );
    write("kustomization.yaml", &kustomization)?;
    println!(
        "wrote {out}/ca.crt, ca.key, tls.crt, tls.key (for {svc}) and kustomization.yaml\ndeploy with: kubectl apply -k {out}",
        out = args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
