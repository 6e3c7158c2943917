//! COSE keys (RFC 9052/9053) as credentials carry them, and their SubjectPublicKeyInfo form.
