source "amazon-ebs" "web" {
  instance_type = "t3.micro"
  user_data = <<EOF
no end to this heredoc
