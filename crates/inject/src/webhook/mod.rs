//! The admission webhook: [`review`] turns an `admission.k8s.io/v1` AdmissionReview into its
//! response (JSON Patch), [`server`] serves it over HTTPS, [`cert`] makes or loads its certificate.
