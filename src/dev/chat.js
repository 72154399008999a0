// json.webpubsub.azure.v1
