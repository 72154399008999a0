//! webpubsub-control
