//! An UpstreamTlsContext whose certificate and roots are files, as lateend sends a
//! DestinationRule `tls` SIMPLE or MUTUAL with `caCertificates`, `clientCertificate`,
//! `privateKey`, `subjectAltNames`, `sni` and `insecureSkipVerify` →
//! [`crate::tls::origination::TlsFiles`]: `tls_certificates[0]` (`certificate_chain`,
//! `private_key` by `filename`) for MUTUAL, `validation_context.trusted_ca.filename` with
//! exact DNS or URI SAN matchers, and no validation context at all for insecureSkipVerify.
//! Inline certificates, SDS secrets and any other field are refused by path.

use lateen_xds::pb::envoy::config::core::v3::{DataSource, data_source};
use lateen_xds::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, TlsCertificate, UpstreamTlsContext,
    common_tls_context::ValidationContextType,
};

use super::fields::leftover;
use super::tls::{Refusal, common_of, refuse, sans_of};
use crate::config::model;
use crate::tls::origination::TlsFiles;

/// Whether the context is the file form: no SDS secret anywhere.
pub fn is_file_form(context: &UpstreamTlsContext) -> bool {
    context.common_tls_context.as_ref().is_some_and(|common| {
        common.tls_certificate_sds_secret_configs.is_empty()
            && matches!(
                common.validation_context_type,
                None | Some(ValidationContextType::ValidationContext(_))
            )
    })
}

/// The file form's cluster TLS.
pub fn upstream_context(context: &UpstreamTlsContext) -> Result<model::UpstreamTls, Refusal> {
    let common = common_of(context)?;
    let (files, subject_alt_names) = common_context(common)
        .map_err(|(field, reason)| (super::join("common_tls_context", &field), reason))?;
    Ok(model::UpstreamTls {
        sni: (!context.sni.is_empty()).then(|| context.sni.clone()),
        subject_alt_names,
        only_tls_mode_istio: false,
        files: Some(files),
    })
}

fn common_context(common: &CommonTlsContext) -> Result<(TlsFiles, Vec<String>), Refusal> {
    let left = leftover(&CommonTlsContext {
        tls_params: None,
        tls_certificates: Vec::new(),
        validation_context_type: None,
        alpn_protocols: Vec::new(),
        ..common.clone()
    });
    if !left.is_empty() {
        return Err(refuse(left.join(", "), "not supported by lateen-proxy"));
    }
    let mut files = TlsFiles::default();
    match common.tls_certificates.as_slice() {
        [] => {}
        [certificate] => {
            let (chain, key) = certificate_files(certificate)
                .map_err(|(field, reason)| (format!("tls_certificates[0].{field}"), reason))?;
            files.client_certificate = Some(chain.into());
            files.private_key = Some(key.into());
        }
        _ => return Err(refuse("tls_certificates", "at most one certificate")),
    }
    let sans = match &common.validation_context_type {
        None => {
            files.insecure_skip_verify = true;
            Vec::new()
        }
        Some(ValidationContextType::ValidationContext(validation)) => {
            let (ca, sans) = validation_files(validation)
                .map_err(|(field, reason)| (format!("validation_context.{field}"), reason))?;
            files.ca_certificates = Some(ca.into());
            sans
        }
        Some(_) => {
            return Err(refuse(
                "validation_context_type",
                "not a file validation context",
            ));
        }
    };
    Ok((files, sans))
}

fn filename(source: Option<&DataSource>, field: &str) -> Result<String, Refusal> {
    match source.and_then(|s| s.specifier.as_ref()) {
        Some(data_source::Specifier::Filename(name)) if !name.is_empty() => Ok(name.clone()),
        _ => Err(refuse(
            field,
            "only a filename is supported by lateen-proxy",
        )),
    }
}

fn certificate_files(certificate: &TlsCertificate) -> Result<(String, String), Refusal> {
    let left = leftover(&TlsCertificate {
        certificate_chain: None,
        private_key: None,
        ..certificate.clone()
    });
    if !left.is_empty() {
        return Err(refuse(left.join(", "), "not supported by lateen-proxy"));
    }
    Ok((
        filename(certificate.certificate_chain.as_ref(), "certificate_chain")?,
        filename(certificate.private_key.as_ref(), "private_key")?,
    ))
}

fn validation_files(
    validation: &CertificateValidationContext,
) -> Result<(String, Vec<String>), Refusal> {
    let ca = filename(validation.trusted_ca.as_ref(), "trusted_ca")?;
    let sans = sans_of(
        &CertificateValidationContext {
            trusted_ca: None,
            ..validation.clone()
        },
        true,
    )?;
    Ok((ca, sans))
}
