//! The TLS clients of the validations: `tls-alpn-01` (ALPN `acme-tls/1`) and `https` redirects
//! of `http-01`. Both accept any certificate: `tls-alpn-01`'s is self-signed by design (RFC
//! 8737 section 3) and checked afterwards by its content; for `http-01` the key authorization
//! is what proves control, so, as Boulder does, an `https` redirect target's certificate chain
//! and name are not checked. The handshake signature is still verified (the server holds the
//! key of the certificate it sent), TLS 1.2 or later only (RFC 8737 section 4), and sessions are
//! never resumed, so that every validation sees the certificate.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, PeerMisbehaved, SignatureScheme,
};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

/// The ALPN protocol of `tls-alpn-01` (RFC 8737 section 6.2).
pub(crate) const ACME_TLS_1: &[u8] = b"acme-tls/1";

pub(crate) struct Clients {
    /// `tls-alpn-01`: offers `acme-tls/1` only.
    pub(crate) alpn: Arc<ClientConfig>,
    /// `https` redirect targets of `http-01`.
    pub(crate) https: Arc<ClientConfig>,
}

impl Clients {
    pub(crate) fn new() -> Result<Self, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = |alpn: Vec<Vec<u8>>| -> Result<Arc<ClientConfig>, rustls::Error> {
            let mut config = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone())))
                .with_no_client_auth();
            config.alpn_protocols = alpn;
            config.resumption = Resumption::disabled();
            Ok(Arc::new(config))
        };
        Ok(Self {
            alpn: config(vec![ACME_TLS_1.to_vec()])?,
            https: config(vec![b"http/1.1".to_vec()])?,
        })
    }
}

/// Accepts any certificate; verifies the handshake's signature with the certificate's key.
///
/// rustls's own signature check parses the certificate with webpki, which refuses any
/// certificate with a critical extension it does not know, so the critical acmeIdentifier
/// extension itself: the key is read with x509-parser instead, and the signature checked with
/// the provider's algorithms, as rustls does (TLS 1.3: the scheme's algorithm only; TLS 1.2:
/// any algorithm of the scheme for the key's type).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl AnyCertificate {
    fn verify(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        tls13: bool,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // RFC 8446 section 4.2.3: no RSASSA-PKCS1-v1_5 nor SHA-1 in TLS 1.3 handshakes.
        let legacy = matches!(
            dss.scheme,
            SignatureScheme::RSA_PKCS1_SHA1
                | SignatureScheme::RSA_PKCS1_SHA256
                | SignatureScheme::RSA_PKCS1_SHA384
                | SignatureScheme::RSA_PKCS1_SHA512
                | SignatureScheme::ECDSA_SHA1_Legacy
        );
        if tls13 && legacy {
            return Err(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into());
        }
        let bad_encoding = || rustls::Error::InvalidCertificate(CertificateError::BadEncoding);
        let (_, parsed) = X509Certificate::from_der(cert.as_ref()).map_err(|_| bad_encoding())?;
        let spki = parsed.public_key();
        let algorithm = algorithm_identifier(spki.raw).ok_or_else(bad_encoding)?;
        let candidates = self
            .0
            .signature_verification_algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algorithms)| *algorithms)
            .ok_or(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
        let candidates = if tls13 {
            &candidates[..candidates.len().min(1)]
        } else {
            candidates
        };
        let algorithm = candidates
            .iter()
            .find(|alg| alg.public_key_alg_id().as_ref() == algorithm)
            .ok_or(rustls::Error::InvalidCertificate(
                CertificateError::BadSignature,
            ))?;
        algorithm
            .verify_signature(&spki.subject_public_key.data, message, dss.signature())
            .map(|()| HandshakeSignatureValid::assertion())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadSignature))
    }
}

/// The contents of the AlgorithmIdentifier SEQUENCE of a DER SubjectPublicKeyInfo.
fn algorithm_identifier(spki: &[u8]) -> Option<&[u8]> {
    let (tag, spki, _) = der_element(spki)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, algorithm, _) = der_element(spki)?;
    (tag == 0x30).then_some(algorithm)
}

/// One DER element: its tag, its contents, what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, b| (len << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify(message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify(message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_elements_are_read_with_short_and_long_lengths() {
        assert_eq!(
            der_element(&[0x04, 0x01, 0xaa, 0xbb]),
            Some((0x04, &[0xaa][..], &[0xbb][..]))
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 128]);
        assert_eq!(der_element(&long).map(|(_, c, _)| c.len()), Some(128));
        assert_eq!(der_element(&[0x04, 0x02, 0xaa]), None);
        assert_eq!(der_element(&[0x04, 0x80]), None);
    }
}
