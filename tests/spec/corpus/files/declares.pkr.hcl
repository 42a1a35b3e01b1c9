# A stand-in template that declares one variable.
variable "app_version" {
  type = string
}
