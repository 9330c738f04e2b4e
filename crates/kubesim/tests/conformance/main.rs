//! Conformance suite: the same behaviour tests run against the in-process
//! `kubesim::ApiServer` (default) or a real cluster named by KUBECONFIG
//! (`KUBESIM_CONFORMANCE_KUBECONFIG=1 cargo test -p kubesim --test conformance`).

mod apply;
mod crud;
mod lifecycle;
mod patch;
mod runtime;
mod status;
mod support;
mod validation;
mod watch;
