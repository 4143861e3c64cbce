//! A parent CA made with OpenSSL, for setting up intermediates: `ca-server init
//! --intermediate` writes a CSR, the parent signs it, `ca-server import` installs it.

use std::path::{Path, PathBuf};

use crate::command::openssl;
use crate::formats::now_unix;

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A self-signed OpenSSL root CA (P-256) named `subject`, valid 30 days: (key, certificate).
pub fn openssl_root(dir: &Path, name: &str, subject: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.pem"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        s(&key),
        "-out",
        s(&cert),
        "-subj",
        subject,
        "-days",
        "30",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    (key, cert)
}

/// Signs the intermediate's CSR in `ca_dir` with the root (key, certificate) into `out`.
pub fn sign_intermediate(ca_dir: &Path, root: &(PathBuf, PathBuf), out: &Path) {
    let ext = out.with_extension("ext");
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .expect("writing the extension file");
    openssl(&[
        "x509",
        "-req",
        "-in",
        s(&ca_dir.join("ca.csr.pem")),
        "-CA",
        s(&root.1),
        "-CAkey",
        s(&root.0),
        "-set_serial",
        &format!("{}", now_unix()),
        "-days",
        "20",
        "-extfile",
        s(&ext),
        "-out",
        s(out),
    ]);
}
