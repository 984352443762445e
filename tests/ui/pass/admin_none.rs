//! A host managed from a console says so; then a default-drop INPUT needs no admin.

fn main() {
    let policy = vpsfw::firewall! {
        allow in on lo;
        allow in state established,related;
        allow in tcp to https state new;
        admin none;
        policy input drop;
    };
    assert!(policy.admins().is_empty());
}
