//! The 80 COCO class names in the order NanoDet-m (and every COCO-80 detector) numbers them.

/// COCO-80 names, index = the class column of the model's score outputs (0 = person).
pub const COCO: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

/// The class index of a COCO name: exact first, then ignoring case and treating `_` and
/// `-` as spaces (`traffic_light`, `Cell-Phone`), so command lines need no quoting.
pub fn class_id(name: &str) -> Option<usize> {
    if let Some(i) = COCO.iter().position(|c| *c == name) {
        return Some(i);
    }
    let norm = |s: &str| s.trim().to_ascii_lowercase().replace(['_', '-'], " ");
    let wanted = norm(name);
    COCO.iter().position(|c| norm(c) == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids() {
        assert_eq!(COCO.len(), 80);
        assert_eq!(class_id("person"), Some(0));
        assert_eq!(class_id("truck"), Some(7));
        assert_eq!(class_id("toothbrush"), Some(79));
        assert_eq!(class_id("Traffic_Light"), Some(9));
        assert_eq!(class_id("cell-phone"), Some(67));
        assert_eq!(class_id("people"), None);
        let mut sorted = COCO.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 80, "names are unique");
    }
}
