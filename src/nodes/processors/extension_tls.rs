//! TLS for the extension nodes (TlsEndpoint, SPEC §1.1): which server certificates the HTTP and gRPC extensions accept, decided once at activation.
//!
//! Trust rules (docs/appliance.md, "TLS endpoints"):
//! - No `trustedCertificates`: the Mozilla roots of `webpki-roots` ("the service's default
//!   trust list"); the machine's own store is not read, so a container image needs none.
//! - `trustedCertificates`: those certificates only, as AVA's API says ("a null list
//!   designates that Azure Video Analyzer's list of trusted authorities should be used"):
//!   CAs, or the server's own self-signed certificate. One listed certificate presented as
//!   the server's own is accepted even when it is marked as a CA (`openssl req -x509` marks
//!   it so by default), after its validity dates were checked.
//! - `ignoreHostname: "true"`: the chain is still checked; the names in the certificate
//!   need not match the URL's host.
//! - `ignoreSignature: "true"`: the chain is not checked at all (unknown CA, self-signed,
//!   expired: "the certificate chain trust validation is skipped"); the name still is,
//!   unless `ignoreHostname` is set too.
//! - Whatever the options, the server must prove it holds the certificate's key (the
//!   handshake signature is always verified): a weakened check stops no eavesdropper who
//!   cannot also impersonate, but it is never "no TLS".
//!
//! Names are matched against the certificate's subjectAltNames (DNS names, or IP addresses
//! for an IP host), as every current TLS client does; a certificate with only a common name
//! matches nothing.

use crate::topology::nodes::common::TlsOptions;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// Why an endpoint's TLS settings cannot be used. Messages name the setting, never a
/// certificate's content.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("endpoint.trustedCertificates.certificates[{index}] is not a usable PEM certificate: {reason}")]
    Certificate { index: usize, reason: String },
    #[error("endpoint.trustedCertificates.certificates lists no certificate: no server could be trusted")]
    NoCertificates,
    #[error("TLS cannot be set up: {0}")]
    Setup(String),
}

/// An endpoint's TLS rules, ready for connections.
#[derive(Clone)]
pub struct Tls {
    verifier: Arc<Verifier>,
    provider: Arc<CryptoProvider>,
}

impl Tls {
    /// The rules of a TlsEndpoint; `None` (an `https` URL on an UnsecuredEndpoint) is the
    /// default trust with strict validation.
    pub fn from_options(options: Option<&TlsOptions>) -> Result<Tls, TlsError> {
        let provider = Arc::new(ring_provider());
        let (roots, listed) = match options.and_then(|o| o.trusted_certificates.as_deref()) {
            None => (RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }, Vec::new()),
            Some(pems) => trusted(pems)?,
        };
        let verifier = Verifier {
            roots: Arc::new(roots),
            listed,
            check_chain: !options.is_some_and(|o| o.ignore_signature),
            check_name: !options.is_some_and(|o| o.ignore_hostname),
            algorithms: provider.signature_verification_algorithms,
        };
        Ok(Tls { verifier: Arc::new(verifier), provider })
    }

    /// What is not checked, when something is not: for a warning when the node starts.
    pub fn weakened(&self) -> Option<&'static str> {
        match (self.verifier.check_chain, self.verifier.check_name) {
            (true, true) => None,
            (true, false) => Some("ignoreHostname: the server certificate's names are not checked against the URL"),
            (false, true) => Some("ignoreSignature: any certificate chain is accepted (unknown or self-signed CA, expired)"),
            (false, false) => Some("ignoreSignature and ignoreHostname: any certificate is accepted"),
        }
    }

    /// The verifier, for clients that build their own configuration (tonic).
    pub fn verifier(&self) -> Arc<dyn ServerCertVerifier> {
        self.verifier.clone()
    }

    /// A client configuration offering `alpn` (most preferred first).
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(self.verifier())
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// rustls' ring provider: deprecated only for lacking post-quantum key exchange, and the one
/// that keeps aws-lc's minutes of C build out of Vela (FIELD-NOTES).
#[allow(deprecated)]
pub fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The trust store of a `PemCertificateList`, and its certificates. An entry may hold a
/// chain (several PEM blocks); each block counts.
fn trusted(pems: &[String]) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), TlsError> {
    let mut roots = RootCertStore::empty();
    let mut listed = Vec::new();
    for (index, pem) in pems.iter().enumerate() {
        let bad = |reason: String| TlsError::Certificate { index, reason };
        let mut found = 0;
        for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let der = der.map_err(|e| bad(e.to_string()))?;
            roots.add(der.clone()).map_err(|e| bad(e.to_string()))?;
            listed.push(der);
            found += 1;
        }
        if found == 0 {
            return Err(bad("no CERTIFICATE block".into()));
        }
    }
    if listed.is_empty() {
        return Err(TlsError::NoCertificates);
    }
    Ok((roots, listed))
}

#[derive(Debug)]
struct Verifier {
    roots: Arc<RootCertStore>,
    /// The `trustedCertificates` themselves.
    listed: Vec<CertificateDer<'static>>,
    check_chain: bool,
    check_name: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        if self.check_chain {
            match verify_server_cert_signed_by_trust_anchor(&cert, &self.roots, intermediates, now, self.algorithms.all) {
                Ok(()) => {}
                Err(e) if ca_used_as_end_entity(&e) && self.listed.iter().any(|c| c.as_ref() == end_entity.as_ref()) => {}
                Err(e) => return Err(e),
            }
        }
        if self.check_name {
            verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// webpki's refusal of a CA certificate presented as a server's own. rustls passes it on
/// only as an opaque error, known by its name. webpki checks the validity dates before this,
/// so a listed certificate that gets here is within them (a unit test holds it to that).
fn ca_used_as_end_entity(e: &rustls::Error) -> bool {
    matches!(e, rustls::Error::InvalidCertificate(CertificateError::Other(o)) if o.0.to_string() == "CaUsedAsEndEntity")
}

/// The TLS failure behind a connection error, if TLS is what failed: rustls errors reach
/// callers inside `io::Error`s, which hide them from `source()`.
pub fn tls_failure<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(r) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return Some(r);
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls::pki_types::PrivateKeyDer;

    struct Made {
        pem: String,
        der: CertificateDer<'static>,
        key: KeyPair,
    }

    fn make_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
    }

    fn leaf(names: &[&str], issuer: Option<&CertifiedIssuer<'static, KeyPair>>, tweak: impl FnOnce(&mut CertificateParams)) -> Made {
        let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        tweak(&mut p);
        let key = KeyPair::generate().unwrap();
        let cert = match issuer {
            Some(i) => p.signed_by(&key, i).unwrap(),
            None => p.self_signed(&key).unwrap(),
        };
        Made { pem: cert.pem(), der: cert.der().clone(), key }
    }

    fn options(trusted: Option<Vec<String>>, ignore_hostname: bool, ignore_signature: bool) -> TlsOptions {
        TlsOptions { trusted_certificates: trusted, ignore_hostname, ignore_signature }
    }

    fn check(tls: &Tls, cert: &CertificateDer<'_>, host: &str) -> Result<(), rustls::Error> {
        let name = ServerName::try_from(host.to_string()).unwrap();
        tls.verifier.verify_server_cert(cert, &[], &name, &[], UnixTime::now()).map(|_| ())
    }

    fn is(e: Result<(), rustls::Error>, want: CertificateError) -> bool {
        matches!(e, Err(rustls::Error::InvalidCertificate(got)) if got == want)
    }

    fn name_error(e: &Result<(), rustls::Error>) -> bool {
        matches!(e, Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })))
    }

    #[test]
    fn a_listed_ca_is_the_only_trust_and_names_must_match() {
        let ca = make_ca("Vela test CA");
        let other = make_ca("Another CA");
        let tls = Tls::from_options(Some(&options(Some(vec![ca.pem()]), false, false))).unwrap();
        assert!(tls.weakened().is_none());
        let good = leaf(&["127.0.0.1", "extension.local"], Some(&ca), |_| {});
        assert!(check(&tls, &good.der, "127.0.0.1").is_ok());
        assert!(check(&tls, &good.der, "extension.local").is_ok());
        assert!(name_error(&check(&tls, &good.der, "10.0.0.1")));
        assert!(name_error(&check(&tls, &good.der, "example.test")));
        // Signed by another CA, or by nobody: unknown issuer.
        let foreign = leaf(&["127.0.0.1"], Some(&other), |_| {});
        assert!(is(check(&tls, &foreign.der, "127.0.0.1"), CertificateError::UnknownIssuer));
        let selfsigned = leaf(&["127.0.0.1"], None, |_| {});
        assert!(is(check(&tls, &selfsigned.der, "127.0.0.1"), CertificateError::UnknownIssuer));
        // Expired, though signed by the listed CA.
        let old = leaf(&["127.0.0.1"], Some(&ca), |p| {
            p.not_before = rcgen::date_time_ymd(2000, 1, 1);
            p.not_after = rcgen::date_time_ymd(2001, 1, 1);
        });
        assert!(matches!(
            check(&tls, &old.der, "127.0.0.1"),
            Err(rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. }))
        ));
    }

    #[test]
    fn the_default_trust_is_the_public_roots() {
        let tls = Tls::from_options(None).unwrap();
        assert!(tls.verifier.roots.len() > 50, "webpki-roots");
        let ca = make_ca("Private CA");
        let cert = leaf(&["127.0.0.1"], Some(&ca), |_| {});
        assert!(is(check(&tls, &cert.der, "127.0.0.1"), CertificateError::UnknownIssuer));
        let tls = Tls::from_options(Some(&options(None, false, false))).unwrap();
        assert!(is(check(&tls, &cert.der, "127.0.0.1"), CertificateError::UnknownIssuer));
    }

    #[test]
    fn a_servers_own_self_signed_certificate_can_be_listed_even_when_marked_as_a_ca() {
        // rcgen's default: not a CA; openssl req -x509's: CA:TRUE.
        for as_ca in [false, true] {
            let mark = |p: &mut CertificateParams| {
                if as_ca {
                    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                }
            };
            let own = leaf(&["127.0.0.1"], None, mark);
            let tls = Tls::from_options(Some(&options(Some(vec![own.pem.clone()]), false, false))).unwrap();
            assert!(check(&tls, &own.der, "127.0.0.1").is_ok(), "CA: {as_ca}");
            assert!(name_error(&check(&tls, &own.der, "example.test")), "CA: {as_ca}");
            // Another self-signed CA certificate is not let in by that exception.
            let stranger = leaf(&["127.0.0.1"], None, mark);
            assert!(check(&tls, &stranger.der, "127.0.0.1").is_err(), "CA: {as_ca}");
            // Listed, but expired: refused.
            let expired = leaf(&["127.0.0.1"], None, |p| {
                mark(p);
                p.not_before = rcgen::date_time_ymd(2000, 1, 1);
                p.not_after = rcgen::date_time_ymd(2001, 1, 1);
            });
            let tls = Tls::from_options(Some(&options(Some(vec![expired.pem.clone()]), false, false))).unwrap();
            assert!(
                matches!(
                    check(&tls, &expired.der, "127.0.0.1"),
                    Err(rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. }))
                ),
                "CA: {as_ca}"
            );
        }
    }

    #[test]
    fn ignore_hostname_still_checks_the_chain() {
        let ca = make_ca("Vela test CA");
        let tls = Tls::from_options(Some(&options(Some(vec![ca.pem()]), true, false))).unwrap();
        assert!(tls.weakened().unwrap().contains("ignoreHostname"));
        let cert = leaf(&["example.test"], Some(&ca), |_| {});
        assert!(check(&tls, &cert.der, "127.0.0.1").is_ok());
        let selfsigned = leaf(&["127.0.0.1"], None, |_| {});
        assert!(is(check(&tls, &selfsigned.der, "127.0.0.1"), CertificateError::UnknownIssuer));
    }

    #[test]
    fn ignore_signature_accepts_any_chain_but_still_checks_the_name() {
        let tls = Tls::from_options(Some(&options(None, false, true))).unwrap();
        assert!(tls.weakened().unwrap().contains("ignoreSignature"));
        let selfsigned = leaf(&["127.0.0.1"], None, |_| {});
        assert!(check(&tls, &selfsigned.der, "127.0.0.1").is_ok());
        let unknown = leaf(&["127.0.0.1"], Some(&make_ca("Unknown CA")), |_| {});
        assert!(check(&tls, &unknown.der, "127.0.0.1").is_ok());
        let expired = leaf(&["127.0.0.1"], None, |p| p.not_after = rcgen::date_time_ymd(2001, 1, 1));
        assert!(check(&tls, &expired.der, "127.0.0.1").is_ok());
        assert!(name_error(&check(&tls, &selfsigned.der, "example.test")));
        // Both: anything that parses as a certificate.
        let tls = Tls::from_options(Some(&options(None, true, true))).unwrap();
        assert!(tls.weakened().unwrap().contains("any certificate is accepted"));
        assert!(check(&tls, &selfsigned.der, "example.test").is_ok());
        assert!(check(&tls, &CertificateDer::from(vec![1u8, 2, 3]), "127.0.0.1").is_err());
    }

    #[test]
    fn bad_certificate_lists_are_refused_by_position_without_their_content() {
        let good = make_ca("Vela test CA").pem();
        let refuse = |pems: Vec<String>| Tls::from_options(Some(&options(Some(pems), false, false))).err().unwrap().to_string();
        let truncated = good.replace("-----END CERTIFICATE-----", "");
        let e = refuse(vec![good.clone(), truncated]);
        assert!(e.starts_with("endpoint.trustedCertificates.certificates[1] is not a usable PEM certificate"), "{e}");
        assert!(!e.contains("MII"), "no certificate content in messages: {e}");
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_string();
        let e = refuse(vec![garbage]);
        assert!(e.contains("certificates[0]"), "{e}");
        let e = refuse(vec!["hello".into()]);
        assert!(e.contains("certificates[0]") && e.contains("no CERTIFICATE block"), "{e}");
        assert!(refuse(vec![]).contains("lists no certificate"));
        // A chain in one entry: every block is trusted.
        let (a, b) = (make_ca("A"), make_ca("B"));
        let tls = Tls::from_options(Some(&options(Some(vec![format!("{}{}", a.pem(), b.pem())]), false, false))).unwrap();
        assert_eq!(tls.verifier.roots.len(), 2);
        assert!(check(&tls, &leaf(&["127.0.0.1"], Some(&b), |_| {}).der, "127.0.0.1").is_ok());
    }

    /// A full handshake in memory: the configuration works end to end, and even with every
    /// check off, a server must hold the key of the certificate it shows.
    #[test]
    fn handshakes_verify_the_servers_key_whatever_the_options() {
        let handshake = |tls: &Tls, cert: &Made, key: &KeyPair| -> Result<(), rustls::Error> {
            let provider = Arc::new(ring_provider());
            // Not with_single_cert: it refuses a key that does not match, and a lying server
            // is what this plays.
            let signing = provider.key_provider.load_private_key(PrivateKeyDer::try_from(key.serialize_der()).unwrap()).unwrap();
            let certified = rustls::sign::CertifiedKey::new(vec![cert.der.clone()], signing);
            let server = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
            let mut server = rustls::ServerConnection::new(Arc::new(server)).unwrap();
            let config = tls.client_config(&[b"h2", b"http/1.1"]).unwrap();
            let mut client = rustls::ClientConnection::new(config, ServerName::try_from("127.0.0.1").unwrap()).unwrap();
            for _ in 0..10 {
                let mut buf = Vec::new();
                while client.wants_write() {
                    client.write_tls(&mut buf).unwrap();
                }
                let mut rd = &buf[..];
                while !rd.is_empty() {
                    server.read_tls(&mut rd).unwrap();
                }
                server.process_new_packets()?;
                let mut buf = Vec::new();
                while server.wants_write() {
                    server.write_tls(&mut buf).unwrap();
                }
                let mut rd = &buf[..];
                while !rd.is_empty() {
                    client.read_tls(&mut rd).unwrap();
                }
                client.process_new_packets()?;
                if !client.is_handshaking() && !server.is_handshaking() {
                    return Ok(());
                }
            }
            panic!("the handshake did not finish");
        };
        let ca = make_ca("Vela test CA");
        let cert = leaf(&["127.0.0.1"], Some(&ca), |_| {});
        let strict = Tls::from_options(Some(&options(Some(vec![ca.pem()]), false, false))).unwrap();
        handshake(&strict, &cert, &cert.key).unwrap();
        let lax = Tls::from_options(Some(&options(None, true, true))).unwrap();
        handshake(&lax, &cert, &cert.key).unwrap();
        let wrong_key = KeyPair::generate().unwrap();
        assert!(handshake(&lax, &cert, &wrong_key).is_err(), "a certificate without its key is refused");
        let selfsigned = leaf(&["127.0.0.1"], None, |_| {});
        let e = handshake(&strict, &selfsigned, &selfsigned.key).unwrap_err();
        assert!(matches!(e, rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)), "{e}");
    }

    #[test]
    fn tls_failures_are_found_inside_io_errors() {
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer));
        let found = tls_failure(&io).unwrap();
        assert_eq!(found.to_string(), "invalid peer certificate: UnknownIssuer");
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(tls_failure(&plain).is_none());
    }
}
