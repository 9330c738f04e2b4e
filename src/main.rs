fn main() {
    print!("{}", shopfleet::api::crd_yaml());
}
