//! The weak-RSA-key checks that every RSA request goes through (CA/Browser Forum Baseline
//! Requirements section 6.1.1.3, `ca_x509::weak_rsa`): a small prime factor, the ROCA
//! fingerprint and Fermat's method, on ordinary 2048- and 4096-bit moduli (the path of every
//! good key, on which all three run to the end), each check alone, and beside them the parsing
//! and signature verification of an RSA CSR of the same size (which includes the checks).

use std::hint::black_box;

use ca_core::csr::{parse, parse_and_verify};
use ca_x509::weak_rsa;
use criterion::{criterion_group, criterion_main, Criterion};

// Moduli and CSRs of keys made by `openssl genrsa` (public parts only).

const MODULUS_2048: &str = concat!(
    "d27378a1bbf9357f91802b01a39aee935eb6e1755587e44b393149d9cce94a37",
    "097608cd4fe438a959e474545ee6486e5f77375827feb295897660c6a89ac05b",
    "f70e808c335cd1958914fd2c92f461382c3afd4200598b589d044bd07205f272",
    "12bde14b3f753e5edd693114033ae0af1c978fc8456ab52d47a55ed76bb1c74b",
    "3640d030baeb24f1b882ba28dbd623f5edf0886ac1fe8e6090968a8863b7991f",
    "66f5b87228fffb2d832a93738f32cdbfa9eaf631799d993789534303e5dab7f3",
    "1e318d7fe4b21b2d5c65cf0825f10165fa18778bcca059f79ff41886fd3ee829",
    "21501da509532d675d2aa9673e042de4ee5127734b3b1b964912ae52fa96c659",
);
const CSR_2048: &str = "\
-----BEGIN CERTIFICATE REQUEST-----
MIICmjCCAYICAQAwITEfMB0GA1UEAwwWcnNhLTIwNDguYmVuY2guZXhhbXBsZTCC
ASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBANJzeKG7+TV/kYArAaOa7pNe
tuF1VYfkSzkxSdnM6Uo3CXYIzU/kOKlZ5HRUXuZIbl93N1gn/rKViXZgxqiawFv3
DoCMM1zRlYkU/SyS9GE4LDr9QgBZi1idBEvQcgXychK94Us/dT5e3WkxFAM64K8c
l4/IRWq1LUelXtdrscdLNkDQMLrrJPG4groo29Yj9e3wiGrB/o5gkJaKiGO3mR9m
9bhyKP/7LYMqk3OPMs2/qer2MXmdmTeJU0MD5dq38x4xjX/kshstXGXPCCXxAWX6
GHeLzKBZ95/0GIb9PugpIVAdpQlTLWddKqlnPgQt5O5RJ3NLOxuWSRKuUvqWxlkC
AwEAAaA0MDIGCSqGSIb3DQEJDjElMCMwIQYDVR0RBBowGIIWcnNhLTIwNDguYmVu
Y2guZXhhbXBsZTANBgkqhkiG9w0BAQsFAAOCAQEArH/vjpiYWIEAGYzt9eYYwFBX
gV92Tqz9bNX6zxLt2Ey28Yi8ifzNMGE0PCGjSJLygaa7/ltmDccvJqdCgMZRHXqd
wOlRTNYSYL7qaWyjDoKirP7hAcxdgunVwwhRzG4b84KGRzpqNnSc9Q2f1x1j4INp
vpv+ofZq7WJQMU/CPNSXTw2nT8D5t/kRNyvdlAYgxu0Y+WoUUtwSOGxqboSCrjPL
Y/aaPYHFmxOrCNyyBhI0A3WCo1dAV7QoDN48k4cm6PIA61ueqRP4o7xDt0WfJnij
SQIe/Nq5JgxaE3HbsZ7RkJNt9LmOP2BLRnBhgqK1ttUx43cLMeuP/P7uo0kwbg==
-----END CERTIFICATE REQUEST-----
";

const MODULUS_4096: &str = concat!(
    "9a67be6cc64d0a602bfd3df16d3f906e1145b8b00e9046370fea5bda2aa37f6d",
    "f0d78ee748bcdb11f4ce12e1efebf7c5b40ec21e220ea8247dfe87f6de4cf2a7",
    "e5e7d1fcbfe42d3b26302c9cb80ea54c98bf2abcf0dbd76d6bdc1d537e2f8262",
    "10b206fbfbd6f059489e46a17252867191409c421e3c1c1868494ccf97b934b3",
    "0b0344a5b8f055cdc0d0a62f0e61a9b80fb6e79de56f9409b635b9e52b3ffeea",
    "0c66ff97c6d48d5e7155590190092965d6627e92907f7a210d75325f224c714e",
    "63aec1e375b36caf5bb9de90a11534edc6643f079e4f8e31c0b9a703f3c87bd9",
    "1b4bcffb8f74bd621873bfd92e714feac87c33877bb0ba009cbc2bbb5dca2e01",
    "f103db1803946f89046fa0f346dfa5d6022ed697cedacc37eae076f89dd45e42",
    "8d1d72d9721aa98ddd7429adc9b88061c52eedcb3bdf709be49b28877bacdf17",
    "a1abf5cffa1c4f977e84055f94e511e9763024c0dfea7670775080ecf441bf55",
    "2354b2c46f62333827377b36910225d24b7561b0b1824027ff9fdcd7d744476d",
    "beef70ba6cafb5feb97b8fe74597281bfcaab63618397f6a984a4f9fc388b8dc",
    "13af0a85d5cb654e1282c7c9ea3a7df0c2532385d128fbbbab576f0a8236f2c0",
    "e7d7ccfe5d72182b1bf2220cac656b078713f5e0ad180c0934996e7694e2b434",
    "7910d76edbdb26c5bcc3f6b8b471be0a65f3f9cd77bb881efacd76ab8d5d1f35",
);
const CSR_4096: &str = "\
-----BEGIN CERTIFICATE REQUEST-----
MIIEmjCCAoICAQAwITEfMB0GA1UEAwwWcnNhLTQwOTYuYmVuY2guZXhhbXBsZTCC
AiIwDQYJKoZIhvcNAQEBBQADggIPADCCAgoCggIBAJpnvmzGTQpgK/098W0/kG4R
RbiwDpBGNw/qW9oqo39t8NeO50i82xH0zhLh7+v3xbQOwh4iDqgkff6H9t5M8qfl
59H8v+QtOyYwLJy4DqVMmL8qvPDb121r3B1Tfi+CYhCyBvv71vBZSJ5GoXJShnGR
QJxCHjwcGGhJTM+XuTSzCwNEpbjwVc3A0KYvDmGpuA+2553lb5QJtjW55Ss//uoM
Zv+XxtSNXnFVWQGQCSll1mJ+kpB/eiENdTJfIkxxTmOuweN1s2yvW7nekKEVNO3G
ZD8Hnk+OMcC5pwPzyHvZG0vP+490vWIYc7/ZLnFP6sh8M4d7sLoAnLwru13KLgHx
A9sYA5RviQRvoPNG36XWAi7Wl87azDfq4Hb4ndReQo0dctlyGqmN3XQprcm4gGHF
Lu3LO99wm+SbKId7rN8Xoav1z/ocT5d+hAVflOUR6XYwJMDf6nZwd1CA7PRBv1Uj
VLLEb2IzOCc3ezaRAiXSS3VhsLGCQCf/n9zX10RHbb7vcLpsr7X+uXuP50WXKBv8
qrY2GDl/aphKT5/DiLjcE68KhdXLZU4SgsfJ6jp98MJTI4XRKPu7q1dvCoI28sDn
18z+XXIYKxvyIgysZWsHhxP14K0YDAk0mW52lOK0NHkQ127b2ybFvMP2uLRxvgpl
8/nNd7uIHvrNdquNXR81AgMBAAGgNDAyBgkqhkiG9w0BCQ4xJTAjMCEGA1UdEQQa
MBiCFnJzYS00MDk2LmJlbmNoLmV4YW1wbGUwDQYJKoZIhvcNAQELBQADggIBACvU
kw0+T1ABFObNX5RGZC8WWSYIoAr7Pj/zMM9jquBlGFGpwlt5Z6IeYPU+X55SLZJW
ZkgWrbQptg+XMO0psTcZdwj/zyWha1KRSsG3EfRLmAsW/EJ2b7QoDBwLTIyAzWwP
xMDNqUZPIN9qV08n55+NfVaJylhlux1RGmgkWpuWc3j3trIxoaaSBT5ZApCaF07i
0Ve10zQqqTlRL6gJXgQBqxmR2i38fU2bNE8csts5S9sIFu9fac6ZUHHYAS8lvehR
Owx90ia2jh+tJvB2OICdF/QgDsruy+jDsedPOFGcRW9u44pqZxVUkW62Vx0t7QqY
xYVvqG/4KAlf9D2ML9lLIEYpz8ghfgmbCwmrdgYirFTa7QYzGY1iSU11aVsVODFn
B9es/LU5PyDNPs4IoV7Od65htqj/bhy1yf8qHWmoTT6f1bjaOCfiv2me4cPPzV9N
FFY/GKepWk4MWHbDpK56vsDp7qfCKXdNAM7izYu6XgUbq7ADG6wsiXQSBm8dMLre
yIjirl1oWF+LGdg7xsdUb9EfZRPn7pAtr9rzO9iZsi99Qosfk+Y/D2EDRfUHtg80
jZT1rX2a4B1SSsu5pAB9FpRVXWR0dqVwrOaky6Ttltfl3HTXH/TmLcKpZMDUKNlc
1UkWHwZMEjAMUfPBPZX25Mf0OkVpfoh82gUpyIC3
-----END CERTIFICATE REQUEST-----
";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn weak_rsa(c: &mut Criterion) {
    let mut group = c.benchmark_group("weak_rsa");
    for (bits, modulus, csr) in [
        (2048, MODULUS_2048, CSR_2048),
        (4096, MODULUS_4096, CSR_4096),
    ] {
        let n = unhex(modulus);
        weak_rsa::check(&n).unwrap();
        group.bench_function(format!("check/{bits}"), |b| {
            b.iter(|| weak_rsa::check(black_box(&n)))
        });
        group.bench_function(format!("small_factor/{bits}"), |b| {
            b.iter(|| weak_rsa::small_factor(black_box(&n)))
        });
        group.bench_function(format!("roca/{bits}"), |b| {
            b.iter(|| weak_rsa::roca_fingerprint(black_box(&n)))
        });
        group.bench_function(format!("fermat/{bits}"), |b| {
            b.iter(|| weak_rsa::fermat(black_box(&n)))
        });
        let csr = csr.as_bytes();
        parse_and_verify(csr).unwrap();
        group.bench_function(format!("csr_parse/rsa-{bits}"), |b| {
            b.iter(|| parse(black_box(csr)).unwrap())
        });
        group.bench_function(format!("csr_parse_verify/rsa-{bits}"), |b| {
            b.iter(|| parse_and_verify(black_box(csr)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, weak_rsa);
criterion_main!(benches);
