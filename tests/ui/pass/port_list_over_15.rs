//! `-m multiport` takes at most 15 ports (a range counts two), so longer lists are split.

fn main() {
    let policy = vpsfw::firewall! {
        allow in tcp to [20, 21, 22, 23, 25, 53, 80, 110, 143, 443, 465, 587, 993, 995, 3306, 5432, 6000:6010, 8080];
    };
    let v4 = vpsfw::render(&policy, vpsfw::Format::Restore);
    let lines: Vec<&str> = v4.lines().filter(|l| l.starts_with("-A ")).collect();
    assert_eq!(
        lines,
        [
            "-A INPUT -p tcp -m multiport --dports 20,21,22,23,25,53,80,110,143,443,465,587,993,995,3306 -j ACCEPT",
            "-A INPUT -p tcp -m multiport --dports 5432,6000:6010,8080 -j ACCEPT",
        ],
        "{v4}"
    );
}
