//! Every finding can be silenced where it is intended, by name, and only that finding.

fn main() {
    let policy = vpsfw::firewall! {
        #![allow(unused_name)]
        host admin = 198.51.100.7;
        host spare = 198.51.100.8;
        net office = 203.0.113.128/25;

        allow in on lo;
        allow in state established,related;
        allow in from admin state new;
        drop in from office;
        // Kept for when the drop above is lifted.
        #[allow(shadowed)]
        allow in from 203.0.113.130 tcp to https;
        #[allow(open_admin_port)]
        allow in tcp to ssh limit 3/minute;
        admin admin;
        policy input drop;
    };
    assert!(policy.analyze().is_empty());
    // The findings are still there for tools that ask for all of them.
    let all = vpsfw::analysis::analyze(&policy, policy.admins(), false);
    let kinds: Vec<_> = all.iter().map(|f| f.kind).collect();
    assert!(kinds.contains(&vpsfw::FindingKind::Shadowed), "{kinds:?}");
    assert!(kinds.contains(&vpsfw::FindingKind::UnusedName), "{kinds:?}");
    assert!(kinds.contains(&vpsfw::FindingKind::OpenAdminPort), "{kinds:?}");
}
