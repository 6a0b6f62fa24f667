//! Scores peers' top-20 lists with Vitrina's metric code on the same split:
//! `cargo run -p vitrina-algo --release --example score_lists -- --data PATH --format F
//!  --protocol P --seed N --lists a.txt,b.txt --names als,bpr` prints one JSON object per list
//! (`{"name", "metrics": {…}, "stdErrors": {…}}`). List lines: `user item1 item2 …`.

mod common;

fn main() {
    let args = common::Args::parse();
    let (ds, split) = args.dataset_and_split();
    let lists: Vec<&str> = args.req("lists").split(',').collect();
    let names: Vec<&str> = args.get("names").map_or_else(|| lists.clone(), |n| n.split(',').collect());
    for (path, name) in lists.iter().zip(names) {
        let text = std::fs::read_to_string(path).expect("read a list file");
        let m = vitrina_algo::eval::evaluate_lists(&text, &ds, &split).expect("score lists");
        let metrics: serde_json::Map<String, serde_json::Value> =
            m.iter().map(|(k, v)| (k.clone(), v.mean.into())).collect();
        let errs: serde_json::Map<String, serde_json::Value> =
            m.iter().map(|(k, v)| (k.clone(), v.stderr.into())).collect();
        println!("{}", serde_json::json!({"name": name, "metrics": metrics, "stdErrors": errs}));
    }
}
